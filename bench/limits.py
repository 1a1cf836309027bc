"""The limits this stack sets, measured with the same generator, frame size and pinning as chatsrv:
bare picows echo / relay / fan-out servers, raw LMDB group-commit puts, raw fdatasync, raw cursor scan.
None of this needs chatsrv.
"""
import os
import struct
import time

import lmdb
import orjson

from . import gen, proc
from .common import BARE_BYTES, BODY_BYTES

TEXT = gen.TEXT
perf = time.perf_counter
PAD = b"x" * (BARE_BYTES - 10)


def _tagged(i):
    return b"%010d" % i + PAD


async def bare_echo(rate, seconds, conns=32, cap=None, prog=None):
    """Server CPU per echoed message at `rate` (inf: closed loop, `cap` in flight)."""
    with proc.bare_server() as srv:
        port = srv.port
        clients = await gen.connect_many(port, conns, "/echo")
        ol = gen.OpenLoop(rate, seconds, None, srv.pid, cap=cap or conns * 32, progress=prog)
        lat, sched = ol.lat, ol.sched

        def send(i):
            clients[i % conns].t.send(TEXT, _tagged(i))

        def on_frame(frame):
            i = int(frame.get_payload_as_bytes()[:10])
            lat[i] = perf() - sched[i]
            ol.deliveries += 1

        ol.send = send
        for c in clients:
            c.fast = on_frame
        r = await ol.run()
        await gen.close_all(clients)
    r.update(kind="bare_echo", connections=conns, frame_bytes=BARE_BYTES)
    return r


async def bare_relay(rate, seconds, pairs=32, cap=None, prog=None):
    """Server CPU per relayed message between `pairs` sender and receiver connections."""
    with proc.bare_server() as srv:
        port = srv.port
        rxs = await gen.connect_many(port, pairs, lambda k: f"/relay/rx/{k}")
        txs = await gen.connect_many(port, pairs, lambda k: f"/relay/tx/{k}")
        ol = gen.OpenLoop(rate, seconds, None, srv.pid, cap=cap or pairs * 32, progress=prog)
        lat, sched = ol.lat, ol.sched

        def send(i):
            txs[i % pairs].t.send(TEXT, _tagged(i))

        def on_frame(frame):
            i = int(frame.get_payload_as_bytes()[:10])
            lat[i] = perf() - sched[i]
            ol.deliveries += 1

        ol.send = send
        for c in rxs:
            c.fast = on_frame
        r = await ol.run()
        await gen.close_all(rxs + txs)
    r.update(kind="bare_relay", pairs=pairs, frame_bytes=BARE_BYTES)
    return r


async def bare_fanout(n, delivery_rate, seconds, cap=None, prog=None):
    """Server CPU per delivery: one publisher, n subscribers, plain `send` loop. Rate in deliveries/s."""
    with proc.bare_server() as srv:
        port = srv.port
        subs = await gen.connect_many(port, n, "/sub")
        pub = await gen.connect(port, "/pub")
        msg_rate = delivery_rate / n
        ol = gen.OpenLoop(msg_rate, seconds, None, srv.pid, cap=cap or max(4 * n, 2000),
                          deliveries_per_msg=n, progress=prog)
        lat, sched = ol.lat, ol.sched

        def send(i):
            pub.t.send(TEXT, _tagged(i))

        def on_probe(frame):   # one subscriber records latency
            i = int(frame.get_payload_as_bytes()[:10])
            lat[i] = perf() - sched[i]
            ol.deliveries += 1

        def on_count(frame):
            ol.deliveries += 1

        ol.send = send
        subs[0].fast = on_probe
        for c in subs[1:]:
            c.fast = on_count
        r = await ol.run()
        await gen.close_all(subs + [pub])
    r.update(kind="bare_fanout", members=n, frame_bytes=BARE_BYTES,
             offered_delivery_rate=None if r["offered_rate"] is None else r["offered_rate"] * n)
    return r


async def bare_churn(seconds, concurrency=32, prog=None):
    """WebSocket connect + close per second against the bare server (no auth: there is none)."""
    import asyncio
    with proc.bare_server() as srv:
        port = srv.port
        count = 0
        t_end = perf() + seconds
        c0, g0, t0 = proc.proc_cpu(srv.pid), proc.self_cpu(), perf()

        async def worker():
            nonlocal count
            while perf() < t_end:
                c = await gen.connect(port, "/echo")
                await c.close()
                count += 1

        async def ticker():
            while perf() < t_end:
                if prog:
                    prog(1 - (t_end - perf()) / seconds)
                await asyncio.sleep(0.25)

        await asyncio.gather(ticker(), *(worker() for _ in range(concurrency)))
        wall = perf() - t0
        c1, g1 = proc.proc_cpu(srv.pid), proc.self_cpu()
    return {"kind": "bare_churn", "connections": count, "per_s": count / wall,
            "server_us_per_conn": (c1 - c0) / count * 1e6 if count else None,
            "server_busy": (c1 - c0) / wall, "gen_busy": (g1 - g0) / wall,
            "generator_bound": (g1 - g0) / wall > 0.7}


# --- LMDB and disk

DBS = (b"users", b"tokens", b"devtokens", b"convs", b"members", b"msgs", b"inbox", b"reads", b"cursors", b"cids")
U64 = struct.Struct(">Q")


def _open_like_server(path, sync=True):
    # The same flags as chatsrv.store.Store
    return lmdb.open(path, map_size=64 << 30, max_dbs=len(DBS), subdir=True, sync=sync, metasync=sync,
                     readahead=False, max_readers=1024, lock=True)


def lmdb_puts(path, batch, seconds=1.5, max_msgs=200_000, sync=True):
    """Durable commits of `batch` direct messages each, written as chatsrv's writer writes one direct
    message: the message record, two inbox entries, the sender's read marker, the cid entry (5 puts)."""
    os.makedirs(path, exist_ok=True)
    env = _open_like_server(path, sync)
    dbs = {n: env.open_db(n) for n in DBS}
    body = "b" * BODY_BYTES
    conv = b"d:bench_alice:bench_bob"
    n = 0
    commits = 0
    t0 = perf()
    t_end = t0 + seconds
    while perf() < t_end and n < max_msgs:
        with env.begin(write=True) as txn:
            for _ in range(batch):
                n += 1
                rec = orjson.dumps({"conv": conv.decode(), "seq": n, "from": "bench_alice", "ts": 1764000000000,
                                    "body": body, "cid": f"c{n}"})[1:]
                mkey = conv + b"\0" + U64.pack(n)
                txn.put(mkey, rec, db=dbs[b"msgs"])
                txn.put(b"bench_alice\0" + U64.pack(n), mkey, db=dbs[b"inbox"])
                txn.put(b"bench_bob\0" + U64.pack(n), mkey, db=dbs[b"inbox"])
                txn.put(b"bench_alice\0" + conv, U64.pack(n), db=dbs[b"reads"])
                txn.put(b"bench_alice\0c%d" % n, orjson.dumps([conv.decode(), n, 1764000000000, n]), db=dbs[b"cids"])
        commits += 1
    wall = perf() - t0
    env.close()
    return {"kind": "lmdb_puts", "batch": batch, "sync": sync, "messages": n, "commits": commits,
            "msgs_per_s": n / wall, "puts_per_s": 5 * n / wall, "commits_per_s": commits / wall,
            "record_bytes": len(rec)}


def fdatasync_rate(directory, seconds=1.5, max_ops=100_000):
    """Overwrite 4 KiB and fdatasync, as fast as possible, in the data directory."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        block = b"\xab" * 4096
        for off in range(0, 16 * 4096, 4096):
            os.pwrite(fd, block, off)
        os.fsync(fd)
        n = 0
        t0 = perf()
        t_end = t0 + seconds
        while perf() < t_end and n < max_ops:
            os.pwrite(fd, block, (n % 16) * 4096)
            os.fdatasync(fd)
            n += 1
        wall = perf() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return {"kind": "fdatasync", "ops": n, "per_s": n / wall, "us_each": wall / n * 1e6}


def lmdb_scan(db_path, user, start=0, limit=None):
    """Raw replay read path: inbox cursor of `user` from position start+1, each entry's message record
    fetched from msgs: the same entries a backlog replay reads. Returns entries and entries/s."""
    env = lmdb.open(db_path, max_dbs=len(DBS), subdir=True, readonly=True, lock=True, readahead=False,
                    max_readers=1024)
    inbox = env.open_db(b"inbox", create=False)
    msgs = env.open_db(b"msgs", create=False)
    prefix = user.encode() + b"\0"
    best = None
    for _ in range(3):
        n = 0
        nbytes = 0
        t0 = perf()
        with env.begin() as txn:
            cur = txn.cursor(db=inbox)
            if cur.set_range(prefix + U64.pack(start + 1)):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    rec = txn.get(v, db=msgs)
                    nbytes += len(rec)
                    n += 1
                    if limit and n >= limit:
                        break
        wall = perf() - t0
        if best is None or wall < best[1]:
            best = (n, wall)
    env.close()
    n, wall = best
    return {"kind": "lmdb_scan", "entries": n, "per_s": n / wall if wall else None, "seconds": wall}
