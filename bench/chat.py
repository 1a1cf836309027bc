"""chatsrv workloads: a server subprocess pinned to the server core, users made once per run, and the
workloads of the benchmarks issue driven by the picows generator (gen.py).

The server gets `--rate 1000000 --burst 1000000` (the per-connection token bucket would otherwise cap a
benchmark connection at 100 requests/s); every other setting is the default unless a workload says so.
"""
import asyncio
import os
import random
import string
import subprocess
import sys
import time

import numpy as np
import orjson

from . import gen, limits, proc
from .common import BODY_BYTES

TEXT = gen.TEXT
perf = time.perf_counter
PASSWORD = "bench-password-1"
DEVICE = "bench"
BODY = "m" * BODY_BYTES


def run_tag():
    """8 characters that make this run's cids unique (a repeated cid is deduplicated by the server)."""
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


class NotAvailable(Exception):
    """The server does not support what the workload needs (yet)."""


class ChatEnv:
    """One chatsrv data directory, its server process, and the users made in it (tokens persist in LMDB,
    so the server can be restarted with other flags and the same users)."""

    def __init__(self, data_dir, prog):
        self.data = data_dir
        self.prog = prog
        self.server = None
        self.flags = ()
        self.tokens = {}

    def start(self, flags=()):
        if self.server is not None and self.server.alive and tuple(flags) == self.flags:
            return self.server
        self.stop()
        self.flags = tuple(flags)
        self.server = proc.chatsrv_server(self.data, flags).start(timeout=30)
        self.port = self.server.port
        return self.server

    def stop(self):
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def pid(self):
        return self.server.pid

    async def ensure_users(self, names, concurrency=8):
        """Signs up and logs in (device "bench") every user not made yet; argon2 makes this ~60 ms a user."""
        todo = [n for n in names if n not in self.tokens]
        if not todo:
            return
        q = list(todo)

        async def worker():
            # one connection per user: signup, then login on the same connection (login authenticates it);
            # a connection that stays unauthenticated is closed by the server after --auth-timeout
            while q:
                name = q.pop()
                c = await gen.connect(self.port)
                try:
                    r = await c.request("signup", user=name, password=PASSWORD, timeout=60)
                    if "err" in r and r["err"]["code"] != "conflict":
                        raise RuntimeError(f"signup {name}: {r['err']}")
                    r = await c.request("login", user=name, password=PASSWORD, device=DEVICE, timeout=60)
                    if "err" in r:
                        raise RuntimeError(f"login {name}: {r['err']}")
                    self.tokens[name] = r["ok"]["token"]
                    await c.wait_event("synced")
                    if c.inbox:
                        await c.request("ack", upto=c.inbox)
                finally:
                    await c.close()

        with self.prog.phase(f"signup {len(todo)} users") as bar:
            n = len(todo)

            async def ticker():
                while q:
                    bar(1 - len(q) / n)
                    await asyncio.sleep(0.25)

            await asyncio.gather(ticker(), *(worker() for _ in range(min(concurrency, len(todo)))))

    async def auth(self, user, ack=True, **kw):
        """An authenticated connection of (user, "bench") whose backlog has been read (and acked)."""
        c = await gen.connect(self.port, **kw)
        r = await c.request("auth", token=self.tokens[user])
        if "err" in r:
            raise RuntimeError(f"auth {user}: {r['err']}")
        await c.wait_event("synced", timeout=120)
        if ack and c.inbox:
            await c.request("ack", upto=c.inbox)
        return c

    async def auth_many(self, users, concurrency=64):
        sem = asyncio.Semaphore(concurrency)

        async def one(u):
            async with sem:
                return await self.auth(u)

        return await asyncio.gather(*(one(u) for u in users))


def users(prefix, n):
    return [f"bench_{prefix}{i:04d}" for i in range(n)]


# --- direct: pairs sending 1-1, every recipient online

async def direct(env, rate, seconds, pairs=32, cap=None, ack_every=100, prog=None):
    """Server CPU per delivered message and latency (scheduled send -> recipient's `msg`) at `rate`
    messages/s over `pairs` sender -> receiver pairs. rate=inf: closed loop with `cap` in flight."""
    us = users("u", 2 * pairs)
    await env.ensure_users(us)
    senders = await env.auth_many(us[:pairs])
    receivers = await env.auth_many(us[pairs:])
    tag = run_tag()
    ol = gen.OpenLoop(rate, seconds, None, env.pid, cap=cap or pairs * 16, progress=prog)
    lat, sched = ol.lat, ol.sched
    acklat = np.full(ol.n_max, np.nan)
    errs = {}
    to = [b'{"id":%%d,"op":"send","to":"%s","body":"%s","cid":"%s%%d"}' % (u.encode(), BODY.encode(), tag.encode())
          for u in us[pairs:]]

    def send(i):
        k = i % pairs
        senders[k].t.send(TEXT, to[k] % (i, i))

    sender_events = {}

    def on_sender(frame):
        d = orjson.loads(frame.get_payload_as_memoryview())
        ev = d.get("ev")
        if ev is not None:            # e.g. `delivered` receipts caused by the receivers' acks
            sender_events[ev] = sender_events.get(ev, 0) + 1
            return
        i = d.get("id")
        if "ok" in d:
            acklat[i] = perf() - sched[i]
        else:
            code = d.get("err", {}).get("code", str(d)[:40])
            errs[code] = errs.get(code, 0) + 1
            ol.errors += 1

    def make_receiver(c):
        state = [0]

        def on_receiver(frame):
            d = orjson.loads(frame.get_payload_as_memoryview())
            if d.get("ev") == "msg":
                i = int(d["cid"][8:])
                lat[i] = perf() - sched[i]
                ol.deliveries += 1
                state[0] += 1
                if state[0] % ack_every == 0:
                    c.t.send(TEXT, b'{"id":0,"op":"ack","upto":%d}' % d["inbox"])
        return on_receiver

    ol.send = send
    for c in senders:
        c.fast = on_sender
    for c in receivers:
        c.fast = make_receiver(c)
    r = await ol.run()
    await gen.close_all(senders + receivers)
    sent_in = acklat[: ol.sent]
    r.update(kind="direct", pairs=pairs, body_bytes=BODY_BYTES, ack_latency=gen.lat_summary(sent_in),
             error_codes=errs, sender_events=sender_events)
    return r


# --- groups (issue 3): not available until group_create exists

async def group(env, n, delivery_rate, seconds, prog=None):
    """A sender posts into a group of n members (sender included), every member online: server CPU per
    delivery (n - 1 deliveries a message)."""
    probe_users = users("u", 2)
    await env.ensure_users(probe_users)
    c = await env.auth(probe_users[0])
    r = await c.request("group_create", name="bench probe", members=[probe_users[1]])
    await c.close()
    if "err" in r:
        raise NotAvailable(f"group_create answered {r['err'].get('code')}: {r['err'].get('msg', '')}")
    members = users("g", n - 1)
    sender_name = probe_users[0]
    await env.ensure_users(members)
    sc = await env.auth(sender_name)
    r = await sc.request("group_create", name=f"bench {n}", members=members)
    if "err" in r:
        raise NotAvailable(f"group_create of {n}: {r['err']}")
    conv = r["ok"]["conv"]
    mconns = await env.auth_many(members)
    tag = run_tag()
    dpm = n - 1
    ol = gen.OpenLoop(delivery_rate / dpm, seconds, None, env.pid, cap=max(4 * dpm, 2000),
                      deliveries_per_msg=dpm, progress=prog)
    lat, sched = ol.lat, ol.sched
    tmpl = b'{"id":%%d,"op":"send","conv":"%s","body":"%s","cid":"%s%%d"}' % (
        conv.encode(), BODY.encode(), tag.encode())

    def send(i):
        sc.t.send(TEXT, tmpl % (i, i))

    def on_sender(frame):
        d = orjson.loads(frame.get_payload_as_memoryview())
        if "err" in d and "ev" not in d:
            ol.errors += 1

    def on_probe(frame):
        d = orjson.loads(frame.get_payload_as_memoryview())
        if d.get("ev") == "msg" and "cid" in d and d["cid"].startswith(tag):
            lat[int(d["cid"][8:])] = perf() - sched[int(d["cid"][8:])]
            ol.deliveries += 1

    def on_count(frame):
        # count only our messages' frames cheaply: every frame in the run is one (no other traffic)
        ol.deliveries += 1

    ol.send = send
    sc.fast = on_sender
    mconns[0].fast = on_probe
    for m in mconns[1:]:
        m.fast = on_count
    res = await ol.run()
    await gen.close_all(mconns + [sc])
    res.update(kind="group", members=n, conv=conv)
    return res


# --- durable: acknowledged sends/s with K concurrent senders (1 in flight each)

async def durable(env, senders, seconds, prog=None):
    us = users("u", max(senders, 1))
    await env.ensure_users(us + ["bench_sink"])
    conns = await env.auth_many(us[:senders])
    tag = run_tag()
    t_start = perf() + 0.3                 # a short warm-up before the window
    t_end = t_start + seconds
    count = [0]
    lat = []
    errors = [0]
    marks = {}

    async def sender(k, c):
        i = 0
        while perf() < t_end:
            i += 1
            t = perf()
            r = await c.request("send", to="bench_sink", body=BODY, cid=f"{tag}{k}-{i}")
            now = perf()
            if "ok" in r:
                if t >= t_start and now <= t_end:
                    count[0] += 1
                    lat.append(now - t)
            else:
                errors[0] += 1
                if r["err"]["code"] in ("unavailable", "internal"):
                    await asyncio.sleep(0.01)

    async def window():
        await asyncio.sleep(max(0, t_start - perf()))
        marks["a"] = (perf(), proc.proc_cpu(env.server.pid), proc.self_cpu())
        while perf() < t_end:
            if prog:
                prog(1 - (t_end - perf()) / seconds)
            await asyncio.sleep(min(0.25, max(0, t_end - perf())))
        marks["b"] = (perf(), proc.proc_cpu(env.server.pid), proc.self_cpu())

    await asyncio.gather(window(), *(sender(k, c) for k, c in enumerate(conns)))
    await gen.close_all(conns)
    (ta, ca, ga), (tb, cb, gb) = marks["a"], marks["b"]
    wall = tb - ta
    return {"kind": "durable", "senders": senders, "acked": count[0], "acked_per_s": count[0] / wall,
            "errors": errors[0], "server_busy": (cb - ca) / wall, "gen_busy": (gb - ga) / wall,
            "server_us_per_msg": (cb - ca) / count[0] * 1e6 if count[0] else None,
            "generator_bound": (gb - ga) / wall > 0.7,
            "ack_latency": gen.lat_summary(np.array(lat))}


# --- drain: backlog replay of 100k messages to a device that connects

async def drain(env, backlog, prog=None, repeats=3):
    tx, rx = "bench_drain_tx", "bench_drain_rx"
    # rx never logs in before the backlog is built: its first device starts at 0 and gets everything
    todo = [u for u in (tx, rx) if u not in env.tokens]
    await env.ensure_users([tx])
    if rx not in env.tokens:
        c = await gen.connect(env.port)
        r = await c.request("signup", user=rx, password=PASSWORD)
        await c.close()
        if "err" in r and r["err"]["code"] != "conflict":
            raise RuntimeError(f"signup {rx}: {r['err']}")
    sc = await env.auth(tx)
    tag = run_tag()
    acked = [0]
    window = 256
    done = asyncio.get_running_loop().create_future()
    next_i = [0]
    tmpl = b'{"id":%%d,"op":"send","to":"%s","body":"%s","cid":"%s%%d"}' % (rx.encode(), BODY.encode(), tag.encode())
    bar = env.prog.phase(f"drain: build backlog {backlog}")

    def send_one():
        i = next_i[0]
        next_i[0] += 1
        sc.t.send(TEXT, tmpl % (i, i))

    def on_sender(frame):
        acked[0] += 1
        if acked[0] % 2000 == 0:
            bar(acked[0] / backlog)
        if acked[0] >= backlog:
            if not done.done():
                done.set_result(None)
        elif next_i[0] < backlog:
            send_one()

    sc.fast = on_sender
    t0 = perf()
    for _ in range(min(window, backlog)):
        send_one()
    await asyncio.wait_for(done, timeout=max(120, backlog / 500))
    build_s = perf() - t0
    bar.close()
    await sc.close()

    # the first login of rx: replay of the whole backlog (measured from the login's ok to `synced`)
    results = []
    token = None
    for rep in range(repeats):
        c = await gen.connect(env.port, read_buffer_init_size=256 * 1024)
        st = {"n": 0, "t_ok": None, "t_synced": None, "head": None}
        fin = asyncio.get_running_loop().create_future()

        def on_frame(frame, st=st, fin=fin):
            mv = frame.get_payload_as_memoryview()
            if bytes(mv[:11]) == b'{"ev":"msg"':
                st["n"] += 1
                return
            d = orjson.loads(mv)
            if d.get("ev") == "synced":
                st["t_synced"] = perf()
                st["head"] = d.get("inbox")
                if not fin.done():
                    fin.set_result(None)
            elif "ok" in d:
                st["t_ok"] = perf()
                st["ok"] = d["ok"]
            elif "err" in d and not fin.done():
                fin.set_exception(RuntimeError(str(d)))

        c.fast = on_frame
        t_req = perf()
        if token is None:
            c.send_json({"id": 1, "op": "login", "user": rx, "password": PASSWORD, "device": "drain"})
        else:
            c.send_json({"id": 1, "op": "auth", "token": token})
        try:
            await asyncio.wait_for(fin, timeout=120)
        except asyncio.TimeoutError:
            pass
        if token is None and st.get("ok"):
            token = st["ok"].get("token")
        t_start = st["t_ok"] or t_req
        secs = (st["t_synced"] or perf()) - t_start
        results.append({"replayed": st["n"], "seconds": secs, "per_s": st["n"] / secs if secs > 0 else None,
                        "synced": st["t_synced"] is not None, "close_code": str(c.close_code) if c.close_code else None,
                        "via": "login" if rep == 0 else "auth"})
        await c.close()
    best = max(results, key=lambda x: x["per_s"] or 0)
    scan = limits.lmdb_scan(os.path.join(env.data, "db"), rx, 0)
    return {"kind": "drain", "backlog": backlog, "build_s": build_s, "build_acked_per_s": backlog / build_s,
            "runs": results, "replay_per_s": best["per_s"], "replayed": best["replayed"],
            "raw_scan_per_s": scan["per_s"], "raw_scan_entries": scan["entries"]}


# --- churn: connect + auth + disconnect

async def churn(env, seconds, concurrency=32, prog=None):
    us = users("u", 16)
    await env.ensure_users(us)
    await env.auth_many(us)   # settle backlogs so every churned auth replays nothing
    count = [0]
    errors = [0]
    t0 = perf()
    t_end = t0 + seconds
    c0, g0 = proc.proc_cpu(env.server.pid), proc.self_cpu()

    async def worker(k):
        j = 0
        while perf() < t_end:
            j += 1
            try:
                c = await gen.connect(env.port, local_ip=f"127.0.0.{2 + k % 8}")
                r = await c.request("auth", token=env.tokens[us[j % len(us)]])
                if "ok" in r:
                    await c.wait_event("synced")
                    count[0] += 1
                else:
                    errors[0] += 1
                await c.close()
            except Exception:
                errors[0] += 1
                await asyncio.sleep(0.01)

    async def ticker():
        while perf() < t_end:
            if prog:
                prog(1 - (t_end - perf()) / seconds)
            await asyncio.sleep(0.25)

    await asyncio.gather(ticker(), *(worker(k) for k in range(concurrency)))
    wall = perf() - t0
    c1, g1 = proc.proc_cpu(env.server.pid), proc.self_cpu()
    return {"kind": "churn", "connections": count[0], "per_s": count[0] / wall, "errors": errors[0],
            "server_us_per_conn": (c1 - c0) / count[0] * 1e6 if count[0] else None,
            "server_busy": (c1 - c0) / wall, "gen_busy": (g1 - g0) / wall, "generator_bound": (g1 - g0) / wall > 0.7}


# --- idle: RSS slope per authenticated idle connection, heartbeats on

IDLE_PER_WORKER = 6600


async def idle(env, steps, prog=None, bare=None):
    """Opens authenticated idle connections in steps (held by worker processes, each under the file
    limit), reads the server's RSS at each step; slope by least squares. With `bare` (a bare picows
    server started with chatsrv's per-connection settings) the same for plain connections to it."""
    if bare is None:
        us = users("u", 16)
        await env.ensure_users(us)
        await env.auth_many(us)
        tokens = [env.tokens[u] for u in us]
        server, port = env.server, env.port
    else:
        tokens, server, port = None, bare, bare.port
    workers = []
    points = []
    await asyncio.sleep(1.0)
    points.append((0, proc.proc_rss(server.pid)))
    total = 0
    failed = 0
    try:
        for step, target in enumerate(steps):
            if prog:
                prog(step / len(steps))
            while total < target and failed == 0:
                if not workers or workers[-1]["n"] >= IDLE_PER_WORKER:
                    workers.append(await _idle_worker(port, tokens, len(workers)))
                w = workers[-1]
                k = min(target - total, IDLE_PER_WORKER - w["n"])
                got, bad = await _idle_cmd(w, f"open {k}")
                w["n"] += got
                total += got
                failed += bad
            await asyncio.sleep(1.5)       # let allocations settle, heartbeats run
            if not server.alive:
                break
            points.append((total, proc.proc_rss(server.pid)))
            if failed:
                break
    finally:
        for w in workers:
            try:
                await _idle_cmd(w, "quit", timeout=20)
            except Exception:
                pass
            try:
                w["p"].kill()
            except ProcessLookupError:
                pass
            await w["p"].wait()
    xs = np.array([p[0] for p in points if p[0] > 0], dtype=float)
    ys = np.array([p[1] for p in points if p[0] > 0], dtype=float)
    slope = float(np.polyfit(xs, ys, 1)[0]) if len(xs) >= 2 else None
    return {"kind": "idle", "points": [{"connections": n, "rss_bytes": r} for n, r in points],
            "max_connections": total, "failed_at_max": failed, "server_alive": server.alive,
            "rss_per_conn_kib": slope / 1024 if slope is not None else None}


async def _idle_worker(port, tokens, k):
    gen_core = proc.cores()[1]
    argv = [sys.executable, "-m", "bench.idle_worker", "--port", str(port), "--local-ip", f"127.0.0.{10 + k}"]
    argv += ["--tokens", ",".join(tokens)] if tokens else ["--bare"]
    if gen_core is not None:
        argv = ["taskset", "-c", str(gen_core)] + argv
    p = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             cwd=proc.REPO)
    line = await asyncio.wait_for(p.stdout.readline(), 30)
    if not line.startswith(b"ready"):
        raise RuntimeError(f"idle worker: {line!r}")
    return {"p": p, "n": 0}


async def _idle_cmd(w, cmd, timeout=120):
    w["p"].stdin.write(cmd.encode() + b"\n")
    await w["p"].stdin.drain()
    line = await asyncio.wait_for(w["p"].stdout.readline(), timeout)
    parts = line.split()
    if cmd == "quit":
        return 0, 0
    return int(parts[1]), int(parts[2])
