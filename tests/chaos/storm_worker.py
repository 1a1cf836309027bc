"""One client process of the reconnect storm (tests/chaos/test_storm.py): many lightweight
WebSocket connections that authenticate with the given tokens and reconnect as soon as
they lose the server, honouring a 1013's retry hint (plus jitter of the same size).

    python storm_worker.py SPEC.json
SPEC: {"url", "tokens": [...], "per_token", "expect": {token: inbox head}, "deadline"}.
Prints `READY n` once every connection has its backlog, then waits for the server to go
away, reconnects all of them (the storm) and prints one JSON line with the outcome:
connections, refusals, when each caught up (monotonic clock, shared by the processes of
one machine) and how many expected messages did not arrive.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time

import orjson
import uvloop
from picows import WSListener, WSMsgType, ws_connect

RETRY_RE = re.compile(rb"retry after (\d+) ms")


class Conn(WSListener):
    """Counts the backlog of one connection until `synced`."""

    def __init__(self, owner: "Slot"):
        super().__init__()
        self.owner = owner
        self.attempt = owner.attempts      # frames of an abandoned attempt must not count

    def on_ws_connected(self, transport):
        self.transport = transport
        transport.send(WSMsgType.TEXT, orjson.dumps({"id": 1, "op": "auth", "token": self.owner.token}))

    def on_ws_frame(self, transport, frame):
        s = self.owner
        if self.attempt != s.attempts:
            transport.disconnect()
            return
        if frame.msg_type == WSMsgType.CLOSE:
            payload = frame.get_payload_as_bytes()
            s.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            m = RETRY_RE.search(payload[2:])
            s.hint = int(m.group(1)) / 1000 if m else None
            # answer, and let the server close the socket: the side that closes first keeps
            # the port in TIME_WAIT, and this side's ports are the scarce ones
            transport.send_close()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        ev = orjson.loads(frame.get_payload_as_bytes())
        name = ev.get("ev")
        if name == "msg":
            s.backlog += 1
        elif name == "synced":
            s.head = ev["inbox"]
            s.synced_at = time.monotonic()
            s.synced.set()
        elif "err" in ev:
            s.error = ev["err"]["code"]

    def on_ws_disconnected(self, transport):
        if self.attempt == self.owner.attempts:
            self.owner.gone.set()


class Slot:
    def __init__(self, url: str, token: str, expect: int):
        self.url, self.token, self.expect = url, token, expect
        self.refused = 0
        self.attempts = 0
        self.errors = 0
        self.reset()

    def reset(self):
        self.synced = asyncio.Event()
        self.gone = asyncio.Event()
        self.backlog = 0
        self.head = None
        self.synced_at = None
        self.close_code = None
        self.hint = None
        self.error = None

    async def connect(self, deadline: float) -> None:
        """Until authenticated with the whole backlog."""
        while time.monotonic() < deadline:
            self.reset()
            self.attempts += 1
            try:
                await asyncio.wait_for(
                    ws_connect(lambda: Conn(self), self.url, websocket_handshake_timeout=10,
                               use_aiofastnet=False), 15)
                done, _ = await asyncio.wait([asyncio.ensure_future(self.synced.wait()),
                                              asyncio.ensure_future(self.gone.wait())],
                                             timeout=30, return_when=asyncio.FIRST_COMPLETED)
                if self.synced.is_set():
                    return
            except (OSError, asyncio.TimeoutError, TimeoutError, Exception):    # noqa: BLE001 - retry all
                self.errors += 1
            if self.close_code == 1013:
                self.refused += 1
            wait = self.hint if self.hint is not None else random.uniform(0.05, 0.5)
            await asyncio.sleep(wait * (1 + random.random()))
        raise TimeoutError("deadline")


async def main(spec: dict) -> None:
    deadline = time.monotonic() + spec["deadline"]
    slots = [Slot(spec["url"], tok, spec["expect"][tok]) for tok in spec["tokens"] for _ in range(spec["per_token"])]
    # the first connect is spread over a second, as clients that start at different times
    async def first(s):
        await asyncio.sleep(random.uniform(0, spec.get("spread", 1.0)))
        await s.connect(deadline)
    await asyncio.gather(*(first(s) for s in slots))
    print(f"READY {len(slots)}", flush=True)
    for s in slots:
        s.refused = s.errors = 0
    await asyncio.gather(*(s.gone.wait() for s in slots))
    t_gone = time.monotonic()
    print("GONE", flush=True)
    results = await asyncio.gather(*(s.connect(deadline) for s in slots), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    out = {
        "n": len(slots), "failed": failed, "t_gone": t_gone,
        "refused": sum(s.refused for s in slots), "attempts": sum(s.attempts for s in slots),
        "errors": sum(s.errors for s in slots),
        "synced_at": sorted(s.synced_at for s in slots if s.synced_at is not None),
        "lost": sum(max(0, s.expect - s.backlog) for s in slots if s.synced_at is not None),
        "extra": sum(max(0, s.backlog - s.expect) for s in slots if s.synced_at is not None),
        "wrong_head": sum(1 for s in slots if s.synced_at is not None and s.head != s.expect),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        uvloop.run(main(json.load(f)))
