"""Bare picows servers: the limits this stack sets, with no chat logic at all.

Run as a subprocess pinned to the server core (`python -m bench.bare_server --port P`).
The URL path picks the role of a connection:
  /echo          every text frame is sent back as is (server CPU per echoed message)
  /relay/tx/K    a frame is sent on to the connection /relay/rx/K (1-1 relay between two connections)
  /relay/rx/K
  /sub           a fan-out receiver
  /pub           every frame is sent to every /sub connection with a plain `send` loop (CPU per delivery)
  /healthz       plain GET: 200 "ok"
It never listens anywhere but the host it is given (127.0.0.1 in the harness).
"""
import argparse
import asyncio
import signal

import uvloop
from picows import (WSCloseCode, WSListener, WSMsgType, WSUpgradeResponse,
                    WSUpgradeResponseWithListener, ws_create_server)

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE

subs = []          # transports of /sub connections, in connection order
relay_rx = {}      # K -> transport of /relay/rx/K


class Echo(WSListener):
    def on_ws_frame(self, transport, frame):
        if frame.msg_type is TEXT:
            transport.send(TEXT, frame.get_payload_as_memoryview())
        elif frame.msg_type is CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class RelayTx(WSListener):
    def __init__(self, key):
        self.key = key
        self.peer = None

    def on_ws_frame(self, transport, frame):
        if frame.msg_type is TEXT:
            peer = self.peer
            if peer is None:
                peer = self.peer = relay_rx.get(self.key)
                if peer is None:
                    return
            peer.send(TEXT, frame.get_payload_as_memoryview())
        elif frame.msg_type is CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class RelayRx(WSListener):
    def __init__(self, key):
        self.key = key

    def on_ws_connected(self, transport):
        relay_rx[self.key] = transport

    def on_ws_frame(self, transport, frame):
        if frame.msg_type is CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        if relay_rx.get(self.key) is transport:
            del relay_rx[self.key]


class Sub(WSListener):
    def on_ws_connected(self, transport):
        subs.append(transport)

    def on_ws_frame(self, transport, frame):
        if frame.msg_type is CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        try:
            subs.remove(transport)
        except ValueError:
            pass


class Pub(WSListener):
    def on_ws_frame(self, transport, frame):
        if frame.msg_type is TEXT:
            data = frame.get_payload_as_bytes()   # one copy, shared by every send
            for t in subs:
                t.send(TEXT, data)
        elif frame.msg_type is CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def factory(request):
    path = request.path.split(b"?", 1)[0]
    if path == b"/echo":
        return Echo()
    if path == b"/pub":
        return Pub()
    if path == b"/sub":
        return Sub()
    if path.startswith(b"/relay/tx/"):
        return RelayTx(path[10:])
    if path.startswith(b"/relay/rx/"):
        return RelayRx(path[10:])
    if path == b"/healthz":
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"ok"), None)
    return None


async def main(args):
    kw = {}
    if args.read_buffer:
        kw["read_buffer_init_size"] = args.read_buffer
    if args.lean:
        # the per-connection settings chatsrv serves with: the floor of memory per idle connection
        kw.update(read_buffer_init_size=2048, use_aiofastnet=False)
    server = await ws_create_server(factory, args.host, args.port, backlog=4096, **kw)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--read-buffer", type=int, default=0)
    ap.add_argument("--lean", action="store_true", help="chatsrv's per-connection settings")
    uvloop.run(main(ap.parse_args()))
