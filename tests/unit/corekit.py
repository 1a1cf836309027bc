"""A Conn without a socket server, for tests/unit/core and tests/unit/bus: picows' real
WSTransport over a fake asyncio transport whose socket is one end of a socketpair, a hub
that records what reaches it, and a parser for the server's (unmasked) frames."""
from __future__ import annotations

import asyncio
import logging
import socket
import struct

import orjson
import pytest
from picows import WSMsgType, WSTransport
from picows.picows import _make_test_ws_frame

from chatsrv.core import Conn, Router


class FakeTransport:
    """The asyncio transport picows writes to. `buffered` is what it reports as queued:
    0 lets writes go straight to the socket, more sends them through write()."""

    def __init__(self, buffered=1):
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        self.peer.setblocking(False)
        self.buffered = buffered
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def get_extra_info(self, name, default=None):
        return {"socket": self.sock, "ssl_object": None, "peername": ("127.0.0.1", 40000)}.get(name, default)

    def get_write_buffer_size(self):
        return self.buffered

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True

    def is_closing(self):
        return self.closed or self.aborted

    def received(self) -> bytes:
        """What reached the peer socket directly, then what went through write()."""
        out = b""
        while True:
            try:
                chunk = self.peer.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            out += chunk
        out += b"".join(self.writes)
        self.writes.clear()
        return out

    def shut(self):
        self.sock.close()
        self.peer.close()


class Hub:
    """Records every call the connection makes into the hub."""

    def __init__(self):
        self.opened = self.closed = 0
        self.objects, self.texts, self.limited = [], [], []

    def on_open(self, conn):
        self.opened += 1

    def on_close(self, conn):
        self.closed += 1

    def on_object(self, conn, obj):
        self.objects.append(obj)

    def on_request(self, conn, text):
        self.texts.append(text)

    def on_limited(self, conn, text):
        self.limited.append(text)


def frames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """(opcode, fin, payload) of each server frame in data."""
    out, i = [], 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        assert not b1 & 0x80, "server frames are not masked"
        n, i = b1 & 0x7F, i + 2
        if n == 126:
            n, i = struct.unpack("!H", data[i:i + 2])[0], i + 2
        elif n == 127:
            n, i = struct.unpack("!Q", data[i:i + 8])[0], i + 8
        out.append((b0 & 0x0F, bool(b0 & 0x80), data[i:i + n]))
        i += n
    assert i == len(data), "a partial frame"
    return out


def close_code(data: bytes):
    """The code of the one CLOSE frame in data, else None."""
    codes = [struct.unpack("!H", p[:2])[0] for op, _, p in frames(data) if op == 0x8]
    assert len(codes) <= 1, codes
    return codes[0] if codes else None


def texts(data: bytes) -> list[dict]:
    return [orjson.loads(p) for op, _, p in frames(data) if op == 0x1]


def text_frame(payload, fin=True, rsv1=False):
    return _make_test_ws_frame(WSMsgType.TEXT, payload if isinstance(payload, bytes) else payload.encode(), fin, rsv1)


def frame(msg_type, payload=b"", fin=True, rsv1=False):
    return _make_test_ws_frame(msg_type, payload, fin, rsv1)


def close_frame(code=None, reason=b""):
    return frame(WSMsgType.CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


class Wire:
    """One Conn on a fake transport, with its router, hub and loop."""

    def __init__(self, loop, max_frame=1024, rate=1000.0, burst=1000.0, close_after=5, buffered=1,
                 router=None, sender=None, close_timeout=0.05, drain_timeout=0.05, write_limit=1 << 20,
                 max_frag_bytes=64 << 20):
        self.loop = loop
        self.hub = Hub()
        self.router = router or Router(write_limit, loop, close_timeout, drain_timeout, max_frag_bytes)
        self.fake = FakeTransport(buffered)
        self.transport = WSTransport(False, self.fake, logging.getLogger("test.core"), loop)
        self.conn = Conn(self.hub, self.router, sender, "", max_frame, rate, burst, close_after)
        self.conn.on_ws_connected(self.transport)

    def feed(self, f):
        self.conn.on_ws_frame(self.transport, f)

    def out(self) -> bytes:
        """Flushes what the connection queued and returns every byte that left."""
        self.router.flush()
        return self.fake.received()

    def login(self, user, device="d1", cursor=0, live=True):
        self.conn.authenticate(user, device, cursor)
        if live:
            self.conn.synced()
        self.router.attach(self.conn)
        return self


def run_for(loop, seconds):
    loop.run_until_complete(asyncio.sleep(seconds))


@pytest.fixture
def loop():
    """A loop of its own for one test (the code under test schedules on it; nothing runs it
    but run_for). conftest.py of tests/unit/core and tests/unit/bus import it."""
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()
