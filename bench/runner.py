"""Runs the workloads, each with the limit it is compared against measured in the same run, and keeps
every result in one dict (written by report.py)."""
import asyncio
import math
import os
import resource
import shutil
import tempfile
import traceback

from . import chat, limits, proc
from .common import Progress

DEFAULTS = {
    "seconds": 3.0,
    "pairs": 32,
    "fanout_delivery_rate": 80000.0,
    "durable_senders": [1, 10, 100],
    "idle_steps": [1000, 5000, 10000, "max"],
    "drain_backlog": 100_000,
    "churn_concurrency": 32,
}


class Runner:
    def __init__(self, args):
        self.args = args
        self.seconds = args.seconds
        self.prog = Progress(enabled=not args.no_progress)
        self.results = {"workloads": {}, "limits": {}, "notes": []}
        self.root = tempfile.mkdtemp(prefix="chatsrv-bench-", dir=args.data_root)
        self.env = None
        self.max_rate = args.rate_max

    # --- helpers

    def note(self, text):
        self.results["notes"].append(text)
        self.prog.note(text)

    async def measured(self, name, coro_fn):
        with self.prog.phase(name) as bar:
            return await coro_fn(bar)

    def chat_env(self):
        if self.env is None:
            if not proc.chatsrv_available():
                raise chat.NotAvailable("chatsrv is not built (no chatsrv/_core*.so or server.py)")
            self.env = chat.ChatEnv(os.path.join(self.root, "chatsrv-data"), self.prog)
        return self.env

    async def chat_started(self, flags=()):
        env = self.chat_env()
        env.start(flags)
        return env

    def close(self):
        if self.env is not None:
            self.env.stop()
        if not self.args.keep_data:
            shutil.rmtree(self.root, ignore_errors=True)

    async def run_safely(self, name, fn):
        try:
            await fn()
        except chat.NotAvailable as e:
            self.results["workloads"][name] = {"available": False, "reason": str(e)}
            self.note(f"{name}: not available: {e}")
        except Exception as e:
            self.results["workloads"][name] = {"available": False, "error": f"{type(e).__name__}: {e}"}
            self.note(f"{name}: FAILED: {type(e).__name__}: {e}")
            if self.args.verbose:
                traceback.print_exc()
            if self.env is not None and self.env.server is not None and not self.env.server.alive:
                self.note(f"chatsrv died; log tail:\n{self.env.server.log_tail()}")
                self.env.server = None

    # --- limits that need no chatsrv

    async def disk(self):
        d = os.path.join(self.root, "disk")
        with self.prog.phase("raw fdatasync") as bar:
            self.results["limits"]["fdatasync"] = limits.fdatasync_rate(d, seconds=min(self.seconds, 2))
            bar(1.0)
        out = {}
        with self.prog.phase("raw LMDB puts (sync)") as bar:
            for i, b in enumerate((1, 10, 100)):
                out[str(b)] = limits.lmdb_puts(os.path.join(d, f"lmdb-{b}"), b, seconds=min(self.seconds, 1.5))
                bar((i + 1) / 3)
        self.results["limits"]["lmdb_puts"] = out
        shutil.rmtree(d, ignore_errors=True)

    async def echo_at(self, rate, key="echo"):
        r = await self.measured(f"bare echo @{_fmt(rate)}/s",
                                lambda bar: limits.bare_echo(rate, self.seconds, conns=self.args.pairs, prog=bar))
        self.results["limits"].setdefault(key, []).append(r)
        return r

    async def relay_at(self, rate):
        r = await self.measured(f"bare relay @{_fmt(rate)}/s",
                                lambda bar: limits.bare_relay(rate, self.seconds, pairs=self.args.pairs, prog=bar))
        self.results["limits"].setdefault("relay", []).append(r)
        return r

    async def fanout_at(self, n, delivery_rate):
        r = await self.measured(f"bare fan-out {n} @{_fmt(delivery_rate)}/s",
                                lambda bar: limits.bare_fanout(n, delivery_rate, self.seconds, prog=bar))
        self.results["limits"][f"fanout{n}"] = r
        return r

    async def echo_limit(self):
        """Bare echo and relay at 40% of the echo's closed-loop maximum (server well over 30% busy; the generator
        reaches about 70% of its core at 50%): the
        limit a chatsrv figure taken at half its own maximum is compared with. Measured once a run."""
        if "echo_limit" not in self.results["limits"]:
            mx = await self.echo_at(math.inf, key="echo_max")
            rate = round(mx["delivered_per_s"] * 0.4, -3)
            self.results["limits"]["echo_limit"] = await self.echo_at(rate)
            self.results["limits"]["relay_limit"] = await self.relay_at(rate)
        return self.results["limits"]["echo_limit"], self.results["limits"]["relay_limit"]

    async def bare_limits(self):
        """Every bare limit at default rates (the chat workloads re-measure theirs at their own rates)."""
        await self.disk()
        await self.echo_limit()
        for n in (100, 1000):
            await self.fanout_at(n, self.args.fanout_rate)
        r = await self.measured("bare churn", lambda bar: limits.bare_churn(min(self.seconds, 3), prog=bar))
        self.results["limits"]["churn"] = r

    # --- chatsrv workloads

    async def direct_max(self):
        if self.max_rate is None:
            env = await self.chat_started()
            r = await self.measured("direct max (closed loop)",
                                    lambda bar: chat.direct(env, math.inf, min(self.seconds, 2), pairs=self.args.pairs,
                                                            prog=bar))
            self.results["workloads"]["direct_max"] = r
            self.max_rate = r["delivered_per_s"]
        return self.max_rate

    async def direct(self):
        mx = await self.direct_max()
        rate = self.args.rate or round(mx * 0.5, -2)
        env = await self.chat_started()
        r = await self.measured(f"direct @{_fmt(rate)}/s",
                                lambda bar: chat.direct(env, rate, self.seconds, pairs=self.args.pairs, prog=bar))
        echo, relay = await self.echo_limit()
        same = await self.echo_at(rate)   # context: the bare echo at chatsrv's rate (less busy, dearer per msg)
        self.results["workloads"]["direct"] = {"chatsrv": r, "echo": echo, "relay": relay, "echo_same_rate": same,
                                               "rate": rate}

    async def latency(self):
        mx = await self.direct_max()
        env = await self.chat_started()
        out = {}
        for frac in (0.25, 0.5, 0.75):
            rate = round(mx * frac, -2)
            r = await self.measured(f"latency {int(frac * 100)}% @{_fmt(rate)}/s",
                                    lambda bar: chat.direct(env, rate, self.seconds, pairs=self.args.pairs, prog=bar))
            out[f"{int(frac * 100)}"] = r
        echo = await self.echo_at(round(mx * 0.5, -2))
        self.results["workloads"]["latency"] = {"max_rate": mx, "runs": out, "echo_at_50": echo}

    async def metrics(self):
        mx = await self.direct_max()
        rate = self.args.rate or round(mx * 0.5, -2)
        runs = {"on": [], "off": []}
        for rep in range(2):
            for mode in ("on", "off"):
                flags = () if mode == "on" else ("--no-metrics",)
                try:
                    env = await self.chat_started(flags)
                except RuntimeError as e:
                    if mode == "off":
                        raise chat.NotAvailable(f"server refused --no-metrics: {str(e)[-300:]}")
                    raise
                r = await self.measured(f"metrics {mode} @{_fmt(rate)}/s",
                                        lambda bar: chat.direct(env, rate, self.seconds, pairs=self.args.pairs,
                                                                prog=bar))
                runs[mode].append(r)
        await self.chat_started()
        on = sum(r["server_us_per_delivery"] for r in runs["on"]) / len(runs["on"])
        off = sum(r["server_us_per_delivery"] for r in runs["off"]) / len(runs["off"])
        self.results["workloads"]["metrics"] = {"rate": rate, "runs": runs, "us_on": on, "us_off": off,
                                                "overhead": on / off - 1}

    async def group(self, n):
        env = await self.chat_started()
        rate = self.args.fanout_rate
        r = await self.measured(f"group{n} @{_fmt(rate)} deliveries/s",
                                lambda bar: chat.group(env, n, rate, self.seconds, prog=bar))
        fan = await self.fanout_at(n, rate)
        self.results["workloads"][f"group{n}"] = {"chatsrv": r, "fanout": fan}

    async def durable(self):
        out = {"synced": {}, "unsafe": {}}
        for mode, flags in (("synced", ()), ("unsafe", ("--unsafe-no-sync",))):
            env = await self.chat_started(flags)
            for k in self.args.durable_senders:
                r = await self.measured(f"durable {mode} {k} senders",
                                        lambda bar: chat.durable(env, k, self.seconds, prog=bar))
                out[mode][str(k)] = r
        await self.chat_started()
        self.results["workloads"]["durable"] = out

    async def drain(self):
        env = await self.chat_started()
        r = await chat.drain(env, self.args.drain_backlog)
        self.results["workloads"]["drain"] = r

    async def churn(self):
        env = await self.chat_started()
        s = min(self.seconds, 3)
        r = await self.measured("churn", lambda bar: chat.churn(env, s, concurrency=32, prog=bar))
        bare = await self.measured("bare churn", lambda bar: limits.bare_churn(s, concurrency=32, prog=bar))
        self.results["workloads"]["churn"] = {"chatsrv": r, "bare": bare}

    async def idle(self):
        # heartbeats on and frequent enough to run during the measurement (picows refuses a reply timeout
        # longer than the idle timeout: --ping-timeout > --ping-interval breaks every connection)
        env = await self.chat_started(("--ping-interval", "2", "--ping-timeout", "2"))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        steps = []
        for s in self.args.idle_steps:
            steps.append(soft - 150 if s == "max" else int(s))
        steps = sorted(set(x for x in steps if x <= soft - 150))
        r = await self.measured(f"idle {steps}", lambda bar: chat.idle(env, steps, prog=bar))
        r["file_limit"] = soft
        await self.chat_started()
        bare = proc.bare_server(lean=True).start()
        try:
            r["bare"] = await self.measured(f"bare idle {steps}", lambda bar: chat.idle(None, steps, prog=bar,
                                                                                  bare=bare))
        finally:
            bare.stop()
        self.results["workloads"]["idle"] = r


def _fmt(x):
    if x is None or (isinstance(x, float) and math.isinf(x)):
        return "max"
    if x >= 1000:
        return f"{x / 1000:.0f}k" if x % 1000 == 0 else f"{x / 1000:.1f}k"
    return f"{x:.0f}"


WORKLOADS = {
    "limits": lambda r: r.bare_limits(),
    "direct": lambda r: r.direct(),
    "latency": lambda r: r.latency(),
    "metrics": lambda r: r.metrics(),
    "group100": lambda r: r.group(100),
    "group1000": lambda r: r.group(1000),
    "durable": lambda r: r.durable(),
    "drain": lambda r: r.drain(),
    "churn": lambda r: r.churn(),
    "idle": lambda r: r.idle(),
}

ALL_ORDER = ["limits", "direct", "latency", "metrics", "group100", "group1000", "durable", "drain", "churn",
             "idle"]


async def run(args, names):
    runner = Runner(args)
    try:
        for name in names:
            runner.prog.note(f"== {name}")
            await runner.run_safely(name, lambda: WORKLOADS[name](runner))
    finally:
        runner.close()
    return runner.results
