"""Turns a run's results into the goals table (Markdown), the JSON file and the PNG plots."""
import json
import math
import os
import platform
import sys

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import picows
        picows_v = getattr(picows, "__version__", "?")
    except Exception:
        picows_v = "?"
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": sys.version.split()[0], "picows": picows_v}


def _num(x, unit="", nd=1):
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "n/a"
    if abs(x) >= 10000:
        return f"{x:,.0f}{unit}"
    return f"{x:.{nd}f}{unit}"


def _flags(r):
    out = []
    if r.get("generator_bound"):
        out.append("generator-bound")
    if r.get("server_under_30pct"):
        out.append(f"server only {r['server_busy'] * 100:.0f}% busy")
    if r.get("skipped_for_cap"):
        out.append(f"{r['skipped_for_cap']} sends skipped (server behind)")
    if r.get("errors"):
        out.append(f"{r['errors']} errors")
    return ", ".join(out)


def goals(results):
    """Rows: workload, chatsrv figure, limit, ratio, goal, verdict, notes."""
    w = results["workloads"]
    lim = results["limits"]
    rows = []

    def na(name, goal):
        x = w.get(name, {})
        why = x.get("reason") or x.get("error") or "not run"
        rows.append([name, "not available", "", "", goal, "—", why])

    def verdict(ok, by):
        return "met" if ok else f"missed by {by}"

    # direct
    d = w.get("direct")
    if d and "chatsrv" in d:
        c, e = d["chatsrv"]["server_us_per_delivery"], d["echo"]["server_us_per_delivery"]
        ratio = c / e
        rows.append(["direct", f"{_num(c)} µs CPU/msg @ {_num(d['rate'])}/s (50% of max), "
                               f"server {d['chatsrv']['server_busy'] * 100:.0f}% busy",
                     f"bare echo {_num(e)} µs @ {_num(d['echo']['offered_rate'])}/s (relay "
                     f"{_num(d['relay']['server_us_per_delivery'])} µs; echo at chatsrv's rate "
                     f"{_num(d['echo_same_rate']['server_us_per_delivery'])} µs)",
                     f"{ratio:.2f}x", "≤ 1.5x echo", verdict(ratio <= 1.5, f"{(ratio / 1.5 - 1) * 100:.0f}%"),
                     _flags(d["chatsrv"])])
    else:
        na("direct", "≤ 1.5x echo")
    # latency
    L = w.get("latency")
    if L and "runs" in L:
        r50 = L["runs"]["50"]
        p99 = r50["latency"]["p99_ms"]
        e99 = L["echo_at_50"]["latency"]["p99_ms"]
        rows.append(["latency", f"p99 {_num(p99, ' ms', 2)} @50% ({_num(r50['offered_rate'])}/s)",
                     f"bare echo p99 {_num(e99, ' ms', 2)} at the same rate", f"{p99 / e99:.1f}x",
                     "p99 ≤ 2 ms at 50%", verdict(p99 <= 2.0, f"{p99 - 2.0:.2f} ms"),
                     "; ".join(f"{k}%: p50 {_num(v['latency']['p50_ms'], '', 2)} / p99 "
                               f"{_num(v['latency']['p99_ms'], '', 2)} / p99.9 {_num(v['latency']['p999_ms'], '', 2)} ms"
                               for k, v in L["runs"].items()) + (" " + _flags(r50) if _flags(r50) else "")])
    else:
        na("latency", "p99 ≤ 2 ms at 50%")
    # groups
    for n in (100, 1000):
        g = w.get(f"group{n}")
        if g and "chatsrv" in g:
            c, f = g["chatsrv"]["server_us_per_delivery"], g["fanout"]["server_us_per_delivery"]
            ratio = c / f
            rows.append([f"group{n}", f"{_num(c, '', 2)} µs CPU/delivery", f"bare fan-out {_num(f, '', 2)} µs",
                         f"{ratio:.2f}x", "≤ 1.3x fan-out", verdict(ratio <= 1.3, f"{(ratio / 1.3 - 1) * 100:.0f}%"),
                         _flags(g["chatsrv"])])
        else:
            f = lim.get(f"fanout{n}")
            na(f"group{n}", "≤ 1.3x fan-out")
            if f:
                rows[-1][2] = f"bare fan-out {_num(f['server_us_per_delivery'], '', 2)} µs"
    # durable
    D = w.get("durable")
    if D and "synced" in D and D["synced"]:
        k = max(D["synced"], key=int)
        s, u = D["synced"][k]["acked_per_s"], D["unsafe"].get(k, {}).get("acked_per_s")
        ratio = s / u if u else None
        others = ", ".join(f"{kk}: {_num(D['synced'][kk]['acked_per_s'])}/s vs {_num(D['unsafe'].get(kk, {}).get('acked_per_s'))}/s"
                           for kk in sorted(D["synced"], key=int))
        lp = lim.get("lmdb_puts", {})
        ctx = f"raw LMDB batch 100: {_num(lp['100']['msgs_per_s'])} msgs/s; " if "100" in lp else ""
        rows.append(["durable", f"{_num(s)} acked/s @{k} senders (synced)", f"{_num(u)} /s with --unsafe-no-sync",
                     f"{ratio:.2f}" if ratio else "n/a", "≥ 0.80 of unsafe at 100",
                     verdict(ratio is not None and ratio >= 0.8, f"{(0.8 - (ratio or 0)) * 100:.0f} points"),
                     ctx + others])
    else:
        na("durable", "≥ 0.80 of unsafe at 100")
    # idle
    I = w.get("idle")
    if I and I.get("rss_per_conn_kib") is not None:
        s = I["rss_per_conn_kib"]
        b = (I.get("bare") or {}).get("rss_per_conn_kib")
        limit = f"bare picows {b:.2f} KiB/conn (chatsrv's settings); " if b else ""
        rows.append(["idle", f"{s:.2f} KiB/conn RSS slope",
                     f"{limit}up to {I['max_connections']} conns (file limit {I['file_limit']})",
                     f"{s / b:.2f}x" if b else "", "≤ 6 KiB/conn", verdict(s <= 6, f"{s - 6:.2f} KiB"),
                     ", ".join(f"{p['connections']}: {p['rss_bytes'] / 2**20:.1f} MiB" for p in I["points"])])
    else:
        na("idle", "≤ 6 KiB/conn")
    # drain
    Dr = w.get("drain")
    if Dr and Dr.get("replay_per_s"):
        rp, sc = Dr["replay_per_s"], Dr["raw_scan_per_s"]
        ratio = sc / rp
        ok = rp >= 200_000 and ratio <= 2
        miss = []
        if rp < 200_000:
            miss.append(f"{(1 - rp / 200_000) * 100:.0f}% under 200k/s")
        if ratio > 2:
            miss.append(f"{ratio / 2:.1f}x past 2x of the scan")
        rows.append(["drain", f"{_num(rp)} msgs/s replay ({Dr['replayed']} msgs)", f"raw LMDB scan {_num(sc)} /s",
                     f"{ratio:.1f}x slower", "≥ 200k/s and ≤ 2x scan", "met" if ok else "missed: " + ", ".join(miss),
                     f"backlog built at {_num(Dr['build_acked_per_s'])} acked/s"])
    else:
        na("drain", "≥ 200k/s and ≤ 2x scan")
    # churn
    Ch = w.get("churn")
    if Ch and "chatsrv" in Ch:
        c, b = Ch["chatsrv"]["per_s"], Ch["bare"]["per_s"]
        rows.append(["churn", f"{_num(c)} conn+auth+close/s", f"bare picows connect+close {_num(b)}/s",
                     f"{c / b:.2f}", "≥ 3k/s", verdict(c >= 3000, f"{(1 - c / 3000) * 100:.0f}%"),
                     (f"{Ch['chatsrv']['errors']} errors; " if Ch["chatsrv"]["errors"] else "")
                     + ("generator-bound" if Ch["chatsrv"]["generator_bound"] else
                        f"server {Ch['chatsrv']['server_busy'] * 100:.0f}% busy")])
    else:
        na("churn", "≥ 3k/s")
    # metrics
    M = w.get("metrics")
    if M and "overhead" in M:
        o = M["overhead"]
        rows.append(["metrics overhead", f"{_num(M['us_on'], '', 2)} µs on / {_num(M['us_off'], '', 2)} µs off",
                     "direct with --no-metrics", f"{o * 100:+.1f}%", "≤ 3% apart",
                     verdict(abs(o) <= 0.03, f"{(abs(o) - 0.03) * 100:.1f} points"), "mean of 2 runs each, alternated"])
    else:
        na("metrics overhead", "≤ 3% apart")
    return rows


def limits_rows(results):
    lim = results["limits"]
    rows = []
    for key in ("echo_max", "echo", "relay"):
        for r in lim.get(key, []):
            key = key if key != "echo" or r["offered_rate"] else "echo_max"
            rows.append([f"bare {key.replace('_max', ' (closed loop)')}", _num(r["delivered_per_s"]) + " /s",
                         _num(r["server_us_per_delivery"], "", 2), f"{r['server_busy'] * 100:.0f}%",
                         f"{r['gen_busy'] * 100:.0f}%",
                         f"{_num(r['latency']['p50_ms'], '', 2)} / {_num(r['latency']['p99_ms'], '', 2)} / "
                         f"{_num(r['latency']['p999_ms'], '', 2)}", _flags(r)])
    for n in (100, 1000):
        r = lim.get(f"fanout{n}")
        if r:
            rows.append([f"bare fan-out to {n}", _num(r["delivered_per_s"]) + " deliveries/s",
                         _num(r["server_us_per_delivery"], "", 2), f"{r['server_busy'] * 100:.0f}%",
                         f"{r['gen_busy'] * 100:.0f}%",
                         f"{_num(r['latency']['p50_ms'], '', 2)} / {_num(r['latency']['p99_ms'], '', 2)} / "
                         f"{_num(r['latency']['p999_ms'], '', 2)}", _flags(r)])
    if "churn" in lim:
        r = lim["churn"]
        rows.append(["bare connect+close", _num(r["per_s"]) + " /s", _num(r["server_us_per_conn"]),
                     f"{r['server_busy'] * 100:.0f}%", f"{r['gen_busy'] * 100:.0f}%", "", ""])
    if "fdatasync" in lim:
        r = lim["fdatasync"]
        rows.append(["raw fdatasync (data dir)", _num(r["per_s"]) + " /s", "", "", "", f"{r['us_each']:.0f} µs each", ""])
    for b, r in sorted(lim.get("lmdb_puts", {}).items(), key=lambda kv: int(kv[0])):
        rows.append([f"raw LMDB sync, batch {b}", f"{_num(r['msgs_per_s'])} msgs/s ({_num(r['puts_per_s'])} puts/s)",
                     "", "", "", f"{_num(r['commits_per_s'])} commits/s", f"{r['record_bytes']} B records"])
    return rows


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def markdown(results):
    m = results["machine"]
    parts = [f"# chatsrv benchmark {results['stamp']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, picows {m['picows']}. "
             f"Server pinned to CPU {results['cores'][0]}, generator to CPU {results['cores'][1]}. "
             f"Command: `{results['command']}`", "",
             "## Goals (each chatsrv figure against its limit, measured in this run)", "",
             table(["workload", "chatsrv", "limit (same run)", "ratio", "goal", "verdict", "notes"], goals(results)),
             "", "## Limits of the stack (same generator, frame size and pinning)", "",
             table(["limit", "rate", "server µs/msg", "server busy", "generator busy", "p50 / p99 / p99.9 ms", "notes"],
                   limits_rows(results))]
    if results["notes"]:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(parts) + "\n"


def plots(results, prefix):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    w, lim = results["workloads"], results["limits"]
    # 1. server CPU per delivered message, chatsrv next to its limit
    bars = []
    if "direct" in w and "chatsrv" in w["direct"]:
        bars += [("bare echo", w["direct"]["echo"]["server_us_per_delivery"], "tab:gray"),
                 ("bare relay", w["direct"]["relay"]["server_us_per_delivery"], "tab:gray"),
                 ("chatsrv direct", w["direct"]["chatsrv"]["server_us_per_delivery"], "tab:blue")]
    if "metrics" in w and "us_off" in w["metrics"]:
        bars += [("direct, no metrics", w["metrics"]["us_off"], "tab:cyan")]
    for n in (100, 1000):
        f = (w.get(f"group{n}") or {}).get("fanout") or lim.get(f"fanout{n}")
        if f:
            bars.append((f"bare fan-out {n}", f["server_us_per_delivery"], "tab:gray"))
        g = (w.get(f"group{n}") or {}).get("chatsrv")
        if g:
            bars.append((f"chatsrv group{n}", g["server_us_per_delivery"], "tab:blue"))
    if not bars:
        for r in lim.get("echo", []) + lim.get("relay", []):
            bars.append((f"{r['kind']} @{r['offered_rate']:.0f}", r["server_us_per_delivery"], "tab:gray"))
    if bars:
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
        for i, b in enumerate(bars):
            ax.text(b[1], i, f" {b[1]:.1f}", va="center")
        ax.set_xlabel("server CPU µs per delivered message (lower is better)")
        ax.invert_yaxis()
        ax.set_title("Cost per message: chatsrv vs the bare limits (same run)")
        fig.tight_layout()
        files.append(prefix + "-cost.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    # 2. throughput
    tp = []
    if "echo_max" in lim:
        tp.append(("bare echo (closed loop)", lim["echo_max"][0]["delivered_per_s"], "tab:gray"))
    if "direct_max" in w and "delivered_per_s" in w["direct_max"]:
        tp.append(("chatsrv direct (closed loop)", w["direct_max"]["delivered_per_s"], "tab:blue"))
    D = w.get("durable", {})
    for mode, col in (("unsafe", "tab:orange"), ("synced", "tab:blue")):
        for k, r in sorted((D.get(mode) or {}).items(), key=lambda kv: int(kv[0])):
            tp.append((f"durable {mode} {k} senders", r["acked_per_s"], col))
    for b, r in sorted(lim.get("lmdb_puts", {}).items(), key=lambda kv: int(kv[0])):
        tp.append((f"raw LMDB sync batch {b}", r["msgs_per_s"], "tab:gray"))
    if "drain" in w and w["drain"].get("replay_per_s"):
        tp.append(("drain replay", w["drain"]["replay_per_s"], "tab:blue"))
        tp.append(("raw LMDB scan", w["drain"]["raw_scan_per_s"], "tab:gray"))
    if "churn" in w and "chatsrv" in w["churn"]:
        tp.append(("churn conn+auth+close", w["churn"]["chatsrv"]["per_s"], "tab:blue"))
        tp.append(("bare connect+close", w["churn"]["bare"]["per_s"], "tab:gray"))
    if tp:
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(tp) + 1.5))
        ax.barh([t[0] for t in tp], [t[1] for t in tp], color=[t[2] for t in tp])
        ax.set_xscale("log")
        for i, t in enumerate(tp):
            ax.text(t[1], i, f" {t[1]:,.0f}", va="center", fontsize=8)
        ax.set_xlabel("per second (log scale)")
        ax.invert_yaxis()
        ax.set_title("Throughput")
        fig.tight_layout()
        files.append(prefix + "-throughput.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    # 3. latency percentiles
    lat = []
    for r in lim.get("echo", []):
        lat.append((f"bare echo @{r['offered_rate']:.0f}/s", r["latency"]))
    for r in lim.get("relay", []):
        lat.append((f"bare relay @{r['offered_rate']:.0f}/s", r["latency"]))
    for k, r in ((w.get("latency") or {}).get("runs") or {}).items():
        lat.append((f"direct {k}% @{r['offered_rate']:.0f}/s", r["latency"]))
    for n in (100, 1000):
        f = (w.get(f"group{n}") or {}).get("fanout") or lim.get(f"fanout{n}")
        if f:
            lat.append((f"bare fan-out {n}", f["latency"]))
        g = (w.get(f"group{n}") or {}).get("chatsrv")
        if g:
            lat.append((f"group{n}", g["latency"]))
    if lat:
        import numpy as np
        fig, ax = plt.subplots(figsize=(10, 4.5))
        x = np.arange(len(lat))
        for j, (key, lab) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))):
            ax.bar(x + (j - 1) * 0.27, [l[1][key] for l in lat], 0.27, label=lab)
        ax.set_xticks(x, [l[0] for l in lat], rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms from scheduled send (log)")
        ax.axhline(2.0, color="red", lw=0.8, ls="--", label="goal: p99 2 ms at 50%")
        ax.legend(fontsize=8)
        ax.set_title("Latency percentiles, open loop")
        fig.tight_layout()
        files.append(prefix + "-latency.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    return files


def write(results, out_dir=RESULTS_DIR):
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, results["stamp"])
    try:
        results["plots"] = [os.path.basename(p) for p in plots(results, prefix)]
    except Exception as e:   # a plot must never lose the numbers
        results["plots"] = []
        results["notes"].append(f"plots failed: {type(e).__name__}: {e}")
    md = markdown(results)
    if results["plots"]:
        md += "\n" + "\n".join(f"![{p}]({p})" for p in results["plots"]) + "\n"
    with open(prefix + ".json", "w") as f:
        json.dump(results, f, indent=1, default=_json_default)
    with open(prefix + ".md", "w") as f:
        f.write(md)
    return prefix, md


def _json_default(x):
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    try:
        return float(x)
    except Exception:
        return str(x)
