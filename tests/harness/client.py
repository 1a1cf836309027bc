"""A small asyncio test client for the chatsrv protocol v1, on picows.

Written against the protocol contract only (docs/protocol.md), never against the
server's code: it also records every violation of that contract it sees (`violations`).  One `Client` is one WebSocket connection.

    c = await Client.connect(url)
    await c.ok("signup", user="alice", password="secret123")   # -> the ok dict
    code = await c.err("login", user="alice", password="nope1234", device="d1")
    ev = await c.event("msg")                                  # next msg event
    code = await c.closed(2.0)                                 # close code received
"""
from __future__ import annotations

import asyncio
import itertools
import struct
import time
from typing import Any, Optional

import orjson
from picows import WSListener, WSMsgType, WSTransport, WSCloseCode, ws_connect

DEFAULT_TIMEOUT = 5.0
PASSWORD = "correct horse 1"


class ReplyTimeout(AssertionError):
    pass


class ConnectionLost(ConnectionError):
    pass


def now_ms() -> int:
    return int(time.time() * 1000)


class _Listener(WSListener):
    """Collects every frame the server sends, in order."""

    def __init__(self, client: "Client"):
        super().__init__()
        self.client = client
        self._frag_type: Optional[WSMsgType] = None
        self._frag = bytearray()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.client.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame) -> None:
        c = self.client
        mt = frame.msg_type
        if mt == WSMsgType.CLOSE:
            payload = frame.get_payload_as_bytes()
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            c.close_code = code
            c.close_reason = payload[2:].decode("utf-8", "replace")
            c.close_received_at = time.monotonic()
            c._wake()
            if not transport.is_close_frame_sent:
                # Answer the server's CLOSE (echo its code when it is a normal one).
                try:
                    transport.send_close(WSCloseCode.OK)
                except Exception:
                    pass
            if c.auto_disconnect_on_close:
                transport.disconnect()
            return
        if mt == WSMsgType.PING:
            # only seen when the client was made with auto_pong=False
            c.pings += 1
            if c.manual_pong:
                transport.send_pong(frame.get_payload_as_bytes())
            c._wake()
            return
        if mt == WSMsgType.PONG:
            c.pongs.append(frame.get_payload_as_bytes())
            c._wake()
            return
        if mt == WSMsgType.BINARY:
            c.violations.append("server sent a BINARY frame")
            return
        if mt == WSMsgType.CONTINUATION:
            if self._frag_type is None:
                c.violations.append("server sent a CONTINUATION without a start")
                return
            self._frag += frame.get_payload_as_bytes()
            if not frame.fin:
                return
            data = bytes(self._frag)
            self._frag = bytearray()
            self._frag_type = None
            c._on_text(data)
            return
        if mt == WSMsgType.TEXT:
            if not frame.fin:
                self._frag_type = mt
                self._frag = bytearray(frame.get_payload_as_bytes())
                return
            c._on_text(frame.get_payload_as_bytes())
            return
        c.violations.append(f"unexpected frame type {mt}")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        c = self.client
        c.disconnected = True
        c.disconnected_at = time.monotonic()
        for fut in c._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("connection closed before the reply"))
        c._pending.clear()
        c._wake()


class Client:
    _ids = itertools.count(1)

    def __init__(self, url: str):
        self.url = url
        self.transport: Optional[WSTransport] = None
        self.frames: list[dict] = []          # every JSON frame received, in order
        self.events: list[dict] = []          # events not consumed yet, in order
        self.orphans: list[dict] = []         # replies nobody waits for (e.g. id null)
        self.violations: list[str] = []       # protocol violations seen by the client
        self.pongs: list[bytes] = []
        self.pings = 0
        self.manual_pong = False
        self._pending: dict[Any, asyncio.Future] = {}
        self._cond = asyncio.Event()
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.close_received_at: Optional[float] = None
        self.disconnected = False
        self.disconnected_at: Optional[float] = None
        self.auto_disconnect_on_close = True
        self.user: Optional[str] = None
        self.device: Optional[str] = None
        self.token: Optional[str] = None

    # ------------------------------------------------------------------ connect
    @classmethod
    async def connect(cls, url: str, origin: Optional[str] = None,
                      headers: "Optional[dict | list[tuple[str, str]]]" = None, timeout: float = 5.0,
                      auto_pong: bool = True, local_addr: Optional[tuple] = None) -> "Client":
        c = cls(url)
        # a list of (name, value) pairs may repeat a header
        extra = list(headers.items() if isinstance(headers, dict) else headers or [])
        if origin is not None:
            extra.append(("Origin", origin))
        transport, _listener = await ws_connect(
            lambda: _Listener(c), url, extra_headers=extra or None,
            websocket_handshake_timeout=timeout, use_aiofastnet=False,
            enable_auto_pong=auto_pong, **({"local_addr": local_addr} if local_addr else {}))
        c.transport = transport
        return c

    async def close(self, timeout: float = 2.0) -> None:
        t = self.transport
        if t is None or self.disconnected:
            return
        try:
            if not t.is_close_frame_sent:
                t.send_close(WSCloseCode.OK)
            t.disconnect()
            await asyncio.wait_for(t.wait_disconnected(), timeout)
        except Exception:
            pass

    # ------------------------------------------------------------------ receive
    def _wake(self) -> None:
        self._cond.set()

    def _on_text(self, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.violations.append(f"server sent a frame that is not JSON: {data[:200]!r}")
            return
        if not isinstance(obj, dict):
            self.violations.append(f"server sent a frame that is not an object: {data[:200]!r}")
            return
        self.frames.append(obj)
        if "ev" in obj:
            if "id" in obj:
                self.violations.append(f"event carries an id: {obj!r}")
            self.events.append(obj)
        elif "id" in obj:
            if ("ok" in obj) == ("err" in obj):
                self.violations.append(f"reply must have exactly one of ok/err: {obj!r}")
            key = _key(obj["id"])
            fut = self._pending.pop(key, None) if obj["id"] is not None else None
            if fut is not None and not fut.done():
                fut.set_result(obj)
            else:
                self.orphans.append(obj)
        else:
            self.violations.append(f"frame is neither event nor reply: {obj!r}")
        self._wake()

    async def _wait(self, pred, timeout: float, what: str):
        """Wait until pred() returns a non-None value; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            r = pred()
            if r is not None:
                return r
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ReplyTimeout(f"timed out after {timeout}s waiting for {what}; "
                                   f"queued events: {[e.get('ev') for e in self.events][:20]}, "
                                   f"closed={self.close_code} disconnected={self.disconnected}")
            self._cond.clear()
            try:
                await asyncio.wait_for(self._cond.wait(), remaining)
            except (asyncio.TimeoutError, TimeoutError):
                pass

    # ------------------------------------------------------------------ requests
    def send_json(self, obj: Any) -> None:
        self.transport.send(WSMsgType.TEXT, orjson.dumps(obj))

    def send_text(self, data: "bytes | str", fin: bool = True) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.transport.send(WSMsgType.TEXT, data, fin)

    def send_frame(self, msg_type: WSMsgType, payload: bytes, fin: bool = True,
                   rsv1: bool = False) -> None:
        self.transport.send(msg_type, payload, fin, rsv1)

    def send_fragments(self, data: bytes, parts: list[int]) -> None:
        """Send `data` as one TEXT message split at the given offsets."""
        cuts = [0, *parts, len(data)]
        chunks = [data[a:b] for a, b in zip(cuts, cuts[1:])]
        for i, chunk in enumerate(chunks):
            mt = WSMsgType.TEXT if i == 0 else WSMsgType.CONTINUATION
            self.transport.send(mt, chunk, i == len(chunks) - 1)

    def send_raw(self, data: bytes) -> None:
        """Arbitrary bytes on the TCP stream (the caller builds masked frames)."""
        self.transport.underlying_transport.write(data)

    def ping(self, payload: bytes = b"p") -> None:
        self.transport.send_ping(payload)

    def start(self, op: str, rid: Any = None, **args) -> asyncio.Future:
        """Send a request without waiting; returns a future of the raw reply."""
        if self.disconnected:
            raise ConnectionLost("connection is closed")
        if rid is None:
            rid = next(Client._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[_key(rid)] = fut
        self.send_json({"id": rid, "op": op, **args})
        return fut

    async def req(self, op: str, rid: Any = None, timeout: float = DEFAULT_TIMEOUT, **args) -> dict:
        fut = self.start(op, rid=rid, **args)
        try:
            return await asyncio.wait_for(fut, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ReplyTimeout(f"no reply to {op} {args!r} within {timeout}s "
                               f"(closed={self.close_code}, disconnected={self.disconnected})") from None

    async def ok(self, op: str, **args) -> dict:
        r = await self.req(op, **args)
        assert "ok" in r, f"{op} {_short(args)} failed: {r!r}"
        assert isinstance(r["ok"], dict), f"{op}: ok is not an object: {r!r}"
        return r["ok"]

    async def err(self, op: str, **args) -> str:
        r = await self.req(op, **args)
        assert "err" in r, f"{op} {_short(args)} expected an error, got {r!r}"
        e = r["err"]
        assert isinstance(e, dict) and isinstance(e.get("code"), str), f"malformed err: {r!r}"
        assert isinstance(e.get("msg"), str), f"err without a msg text: {r!r}"
        return e["code"]

    async def next_orphan(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """The next reply that no `req` waits for (e.g. a reply with id null)."""
        def pred():
            if self.orphans:
                return self.orphans.pop(0)
            return None
        return await self._wait(pred, timeout, "a reply")

    # ------------------------------------------------------------------ events
    async def event(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> dict:
        def pred():
            for i, e in enumerate(self.events):
                if e.get("ev") == name:
                    return self.events.pop(i)
            if self.disconnected:
                raise ConnectionLost(f"connection closed (code {self.close_code}) "
                                     f"while waiting for event {name!r}")
            return None
        return await self._wait(pred, timeout, f"event {name!r}")

    async def events_of(self, name: str, n: int, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out = []
        for _ in range(n):
            out.append(await self.event(name, max(0.01, deadline - loop.time())))
        return out

    async def until(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[list[dict], dict]:
        """Pop every queued event up to and including the first `name` event.
        Returns (events before it, that event)."""
        def pred():
            for i, e in enumerate(self.events):
                if e.get("ev") == name:
                    before = self.events[:i]
                    ev = self.events[i]
                    del self.events[:i + 1]
                    return before, ev
            if self.disconnected:
                raise ConnectionLost(f"connection closed (code {self.close_code}) "
                                     f"while waiting for event {name!r}")
            return None
        return await self._wait(pred, timeout, f"event {name!r}")

    async def no_event(self, name: str, within: float = 0.3) -> None:
        await asyncio.sleep(within)
        got = [e for e in self.events if e.get("ev") == name]
        assert not got, f"unexpected {name!r} events: {got!r}"

    async def backlog(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[list[dict], int]:
        """After login/auth: the `msg` events of the backlog and the `synced` inbox head."""
        before, synced = await self.until("synced", timeout)
        non_msg = [e for e in before if e.get("ev") != "msg"]
        assert not non_msg, f"unexpected events before synced: {non_msg!r}"
        inbox = synced.get("inbox")
        assert isinstance(inbox, int) and not isinstance(inbox, bool), f"bad synced: {synced!r}"
        return before, inbox

    # ------------------------------------------------------------------ close
    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> Optional[int]:
        """Wait until the connection is closed by the server; the close code received
        (None when the TCP connection ended without a CLOSE frame)."""
        def pred():
            if self.disconnected:
                return True
            return None
        await self._wait(pred, timeout, "the connection to close")
        return self.close_code

    async def close_frame(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the server's CLOSE frame (without requiring TCP to end)."""
        def pred():
            if self.close_code is not None:
                return self.close_code
            if self.disconnected:
                raise ConnectionLost("disconnected without a CLOSE frame")
            return None
        return await self._wait(pred, timeout, "a CLOSE frame")

    # ------------------------------------------------------------------ helpers
    async def signup(self, user: str, password: str = PASSWORD) -> dict:
        ok = await self.ok("signup", user=user, password=password)
        assert ok.get("user") == user, ok
        return ok

    async def login(self, user: str, password: str = PASSWORD, device: str = "dev1") -> dict:
        ok = await self.ok("login", user=user, password=password, device=device)
        assert ok.get("user") == user and ok.get("device") == device, ok
        assert isinstance(ok.get("token"), str) and ok["token"], ok
        self.user, self.device, self.token = user, device, ok["token"]
        return ok

    async def auth(self, token: str) -> dict:
        ok = await self.ok("auth", token=token)
        self.user, self.device, self.token = ok.get("user"), ok.get("device"), token
        return ok

    async def send_msg(self, body: str, to: Optional[str] = None, conv: Optional[str] = None,
                       cid: Optional[str] = None) -> dict:
        args: dict[str, Any] = {"body": body, "cid": cid or _cid()}
        if to is not None:
            args["to"] = to
        if conv is not None:
            args["conv"] = conv
        return await self.ok("send", **args)


_cid_counter = itertools.count(1)


def _cid() -> str:
    return f"c{next(_cid_counter)}-{time.monotonic_ns()}"


def _key(rid: Any) -> tuple:
    return (type(rid).__name__, rid if not isinstance(rid, (list, dict)) else repr(rid))


def _short(args: dict) -> str:
    s = repr(args)
    return s if len(s) < 200 else s[:200] + "..."


def dconv(a: str, b: str) -> str:
    """The direct conversation id of two users (design.md)."""
    return f"d:{min(a, b)}:{max(a, b)}"
