"""A helper process of the idle workload: holds authenticated idle chatsrv connections.

One process can hold only as many sockets as its file limit allows (20000 here, the same as the server's),
so the idle workload spreads its connections over several of these. Commands on stdin, one a line:
  open N   open N more connections, each authenticated; answers "opened OK FAILED"
  quit     close everything and exit
With --bare it holds plain connections to a bare picows server instead (the memory floor).
Heartbeats: picows answers the server's pings by itself (auto-pong). It binds its own loopback source
address (--local-ip) so that its ports do not compete with other workers for the ephemeral range.
"""
import argparse
import asyncio
import sys

import uvloop

from . import gen


async def main(args):
    tokens = args.tokens.split(",")
    conns = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    sem = asyncio.Semaphore(64)

    async def one(i):
        async with sem:
            if args.bare:
                return await gen.connect(args.port, path="/echo", local_ip=args.local_ip)
            c = await gen.connect(args.port, local_ip=args.local_ip)
            r = await c.request("auth", token=tokens[i % len(tokens)], timeout=60)
            if "ok" not in r:
                raise RuntimeError(str(r))
            await c.wait_event("synced", timeout=60)
            c.events.clear()
            return c

    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "quit":
            break
        if line[0] == "open":
            n = int(line[1])
            res = await asyncio.gather(*(one(len(conns) + i) for i in range(n)), return_exceptions=True)
            ok = [c for c in res if not isinstance(c, BaseException)]
            conns.extend(ok)
            print(f"opened {len(ok)} {n - len(ok)}", flush=True)
    for i in range(0, len(conns), 500):
        for c in conns[i:i + 500]:
            c.t.disconnect(graceful=False)
        await asyncio.sleep(0)
    print("bye", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--local-ip", default=None)
    ap.add_argument("--tokens", default="")
    ap.add_argument("--bare", action="store_true", help="plain connections to a bare picows server's /echo")
    uvloop.run(main(ap.parse_args()))
