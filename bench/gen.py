"""The load generator: picows + uvloop client connections and an open-loop sender.

Open loop: the schedule is fixed before the run. Every tick (1 ms) has a scheduled time t0 + k ms and
owes floor(R * (k+1) ms) - floor(R * k ms) messages; each message's latency is measured from its tick's
scheduled time, so a slow server (or a late generator) shows up as latency, never as a lower rate
(no coordinated omission). A cap on messages in flight keeps a server that cannot keep up from making the
generator buffer without bound: sends skipped for the cap are counted and reported (`skipped`).

The same engine at a huge offered rate with the cap is a closed loop with `cap` messages in flight: that
is how the maximum rate is measured.
"""
import asyncio
import math
import time

import numpy as np
import orjson
from picows import WSListener, WSMsgType, ws_connect

from . import proc

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
perf = time.perf_counter
TICK = 0.001


class Client(WSListener):
    """One WebSocket connection. Request/reply by id for set-up; `fast` takes over frames in a measured run."""

    def __init__(self):
        self.t = None
        self.fast = None          # callable(frame) on the hot path, or None
        self.pending = {}         # id -> future
        self.events = []          # events received outside the hot path
        self.event_waiters = []   # (name, future)
        self.next_id = 0
        self.closed = None        # future set on disconnect
        self.close_code = None
        self.inbox = 0            # highest inbox position seen (msg events, synced)

    def on_ws_connected(self, transport):
        self.t = transport
        self.closed = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport, frame):
        fast = self.fast
        if fast is not None and frame.msg_type is TEXT:
            fast(frame)
            return
        if frame.msg_type is TEXT:
            self.on_json(orjson.loads(frame.get_payload_as_memoryview()))
        elif frame.msg_type is CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_json(self, d):
        rid = d.get("id")
        if rid is not None and "ev" not in d:
            fut = self.pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(d)
            return
        ev = d.get("ev")
        if ev == "msg":
            if d.get("inbox", 0) > self.inbox:
                self.inbox = d["inbox"]
        elif ev == "synced":
            self.inbox = max(self.inbox, d.get("inbox", 0))
        for i, (name, fut) in enumerate(self.event_waiters):
            if name == ev and not fut.done():
                fut.set_result(d)
                del self.event_waiters[i]
                return
        if ev != "msg":          # backlogs can be huge: keep only the small events
            self.events.append(d)

    def on_ws_disconnected(self, transport):
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(True)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("disconnected"))
        self.pending.clear()
        for _, fut in self.event_waiters:
            if not fut.done():
                fut.set_exception(ConnectionError("disconnected"))
        self.event_waiters.clear()

    def send_json(self, d):
        self.t.send(TEXT, orjson.dumps(d))

    async def request(self, op, timeout=30.0, **kw):
        self.next_id += 1
        rid = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.send_json({"id": rid, "op": op, **kw})
        return await asyncio.wait_for(fut, timeout)

    async def wait_event(self, name, timeout=30.0):
        for i, d in enumerate(self.events):
            if d.get("ev") == name:
                del self.events[i]
                return d
        fut = asyncio.get_running_loop().create_future()
        self.event_waiters.append((name, fut))
        return await asyncio.wait_for(fut, timeout)

    async def close(self, timeout=2.0):
        if self.t is None or self.t.is_disconnected:
            return
        try:
            self.t.send_close()
        except Exception:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except (asyncio.TimeoutError, Exception):
            pass
        self.t.disconnect(graceful=False)


async def connect(port, path="/ws", cls=Client, local_ip=None, **kw):
    extra = {}
    if local_ip:
        extra["local_addr"] = (local_ip, 0)
    kw.setdefault("read_buffer_init_size", 4096)
    _, client = await ws_connect(cls, f"ws://{proc.HOST}:{port}{path}", **extra, **kw)
    return client


async def connect_many(port, n, path="/ws", concurrency=64, **kw):
    """n connections, at most `concurrency` handshakes at a time; path may be a callable(i)."""
    out = [None] * n
    sem = asyncio.Semaphore(concurrency)

    async def one(i):
        async with sem:
            out[i] = await connect(port, path(i) if callable(path) else path, **kw)

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients if c is not None), return_exceptions=True)


def pct(arr, q):
    if arr.size == 0:
        return float("nan")
    return float(np.percentile(arr, q))


def lat_summary(arr):
    """Latency percentiles in milliseconds."""
    arr = arr[~np.isnan(arr)]
    return {"n": int(arr.size), "p50_ms": pct(arr, 50) * 1e3, "p99_ms": pct(arr, 99) * 1e3,
            "p999_ms": pct(arr, 99.9) * 1e3, "max_ms": (float(arr.max()) * 1e3) if arr.size else float("nan")}


class OpenLoop:
    """Drive `send(i)` at `rate` msg/s for warmup + seconds; receivers call `delivered(i)` / `delivered_n(n)`.

    `deliveries_per_msg` is how many deliveries one message makes (1 for echo and direct, N for fan-out):
    in flight = sent * deliveries_per_msg - delivered.  Latency is recorded per message at its first
    (probe) delivery: `record(i)`.
    """

    def __init__(self, rate, seconds, send, server_pid=None, warmup=0.5, cap=4000, deliveries_per_msg=1,
                 drain=2.0, progress=None):
        self.rate = float(rate)
        self.seconds = float(seconds)
        self.warmup = float(warmup)
        self.send = send
        self.server_pid = server_pid
        self.cap = cap
        self.dpm = deliveries_per_msg
        self.drain = drain
        self.progress = progress
        total_s = self.warmup + self.seconds
        self.n_max = int(min(self.rate * total_s, 50_000_000 if math.isfinite(self.rate) else 0)) + 1
        self.closed_loop = not math.isfinite(self.rate) or self.rate * total_s > 20_000_000
        if self.closed_loop:
            self.n_max = 4_000_000
        self.sched = np.full(self.n_max, np.nan)
        self.lat = np.full(self.n_max, np.nan)
        self.sent = 0
        self.skipped = 0
        self.nreal = 0
        self.deliveries = 0
        self.errors = 0

    # called by receivers
    def record(self, i, now=None):
        if 0 <= i < self.sent:
            self.lat[i] = (now or perf()) - self.sched[i]

    async def run(self):
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        t0 = perf() + 0.01
        total_s = self.warmup + self.seconds
        t_meas0 = t0 + self.warmup
        t_end = t0 + total_s
        marks = {}
        state = {"k": 0}
        rate, cap, dpm, send, sched = self.rate, self.cap, self.dpm, self.send, self.sched
        n_max = self.n_max
        last_progress = [t0]

        def mark(name):
            marks[name] = (perf(), self.deliveries, self.sent,
                           proc.proc_cpu(self.server_pid) if self.server_pid else 0.0, proc.self_cpu())

        def tick():
            now = perf()
            if self.closed_loop:
                # keep `cap` deliveries outstanding; a message's scheduled time is when it was sent
                if "meas0" not in marks and now >= t_meas0:
                    mark("meas0")
                i = self.sent
                while i < n_max and self.nreal * dpm - self.deliveries < cap:
                    sched[i] = now
                    send(i)
                    self.nreal += 1
                    i += 1
                self.sent = i
            else:
                k = state["k"]
                # catch up every tick whose time has come; each message keeps its own tick's scheduled time
                while True:
                    ts = t0 + k * TICK
                    if ts > now or ts >= t_end:
                        break
                    if "meas0" not in marks and ts >= t_meas0:
                        mark("meas0")
                    owed = min(int(rate * (k + 1) * TICK), n_max)
                    i = self.sent
                    while i < owed:
                        if self.nreal * dpm - self.deliveries >= cap:
                            self.skipped += 1       # dropped from the schedule: its sched stays NaN
                        else:
                            sched[i] = ts
                            send(i)
                            self.nreal += 1
                        i += 1
                    self.sent = i
                    k += 1
                state["k"] = k
            if self.progress is not None and now - last_progress[0] > 0.25:
                self.progress(min(1.0, (now - t0) / total_s))
                last_progress[0] = now
            if now >= t_end or self.sent >= n_max:
                mark("meas1")
                done.set_result(None)
                return
            if self.closed_loop:
                loop.call_later(TICK, tick)
            else:
                loop.call_later(max(0.0, t0 + state["k"] * TICK - perf()), tick)

        loop.call_at(loop.time() + max(0.0, t0 - perf()), tick)
        await done
        if "meas0" not in marks:
            marks["meas0"] = marks["meas1"]
        # let the in-flight messages land (they count for latency, not for the CPU window)
        deadline = perf() + self.drain
        while self.deliveries < self.sent_real() * dpm and perf() < deadline:
            await asyncio.sleep(0.01)
        return self.result(marks)

    def sent_real(self):
        return self.nreal

    def result(self, marks):
        (ta, da, sa, ca, ga), (tb, db, sb, cb, gb) = marks["meas0"], marks["meas1"]
        wall = tb - ta
        delivered = db - da
        srv_cpu = cb - ca
        gen_cpu = gb - ga
        # latency of messages scheduled inside the measured window
        inwin = (self.sched[: self.sent] >= ta) & (self.sched[: self.sent] < tb)
        lat = self.lat[: self.sent][inwin]
        lost = int(np.count_nonzero(np.isnan(lat) & ~np.isnan(self.sched[: self.sent][inwin])))
        r = {
            "offered_rate": None if self.closed_loop else self.rate,
            "window_s": wall,
            "sent": self.sent_real(),
            "skipped_for_cap": self.skipped,
            "delivered_in_window": delivered,
            "delivered_per_s": delivered / wall if wall > 0 else 0.0,
            "server_cpu_s": srv_cpu,
            "server_busy": srv_cpu / wall if wall > 0 else 0.0,
            "server_us_per_delivery": (srv_cpu / delivered * 1e6) if delivered else float("nan"),
            "gen_cpu_s": gen_cpu,
            "gen_busy": gen_cpu / wall if wall > 0 else 0.0,
            "errors": self.errors,
            "not_delivered_in_window": lost,
        }
        r["generator_bound"] = r["gen_busy"] > 0.70
        r["server_under_30pct"] = r["server_busy"] < 0.30
        r["latency"] = lat_summary(lat)
        return r
