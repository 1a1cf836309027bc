"""A real full filesystem under a running server (a small tmpfs filled to the last byte):
sends are answered `unavailable` and nothing acknowledged is lost; once room is made the
same server takes writes again, without a restart."""
import itertools

from conftest import uname
from harness.client import PASSWORD
from harness.disk import SmallFilesystem

MiB = 1 << 20
_cids = itertools.count()


async def _send(c, to, body):
    """(cid, reply) of one send."""
    cid = f"fd{next(_cids)}"
    return cid, await c.req("send", to=to, body=body, cid=cid, timeout=10)


async def test_full_filesystem_unavailable_then_recovers_without_restart(tmp_path, make_server, connect, login):
    with SmallFilesystem(tmp_path / "fs", 8 * MiB) as fs:
        srv = make_server("--rate", "100000", "--burst", "100000", data=fs.path / "data")
        a, b = await login(srv), await login(srv)
        acked, refused = [], []

        async def sends(n, body):
            for _ in range(n):
                cid, r = await _send(a, b.user, body)
                if "ok" in r:
                    acked.append((cid, r["ok"]["seq"]))
                else:
                    refused.append((cid, r["err"]["code"]))

        await sends(20, "before the disk fills " * 50)
        assert len(acked) == 20
        fs.fill()
        await sends(300, "x" * 8000)           # 2.4 MB: more than the pages LMDB can reuse
        assert refused, "no send was refused on a full filesystem"
        assert {code for _, code in refused} == {"unavailable"}, refused[:5]
        n_full = len(acked)
        # reads still work while the disk is full
        assert (await a.ok("convs"))["convs"][0]["last_seq"] == n_full
        fs.free()
        await sends(20, "after room was made")
        assert len(acked) == n_full + 20, refused[-5:]
        # b, connected all along, got every acknowledged message once, in order, and none refused
        got = await b.events_of("msg", len(acked), timeout=10)
        assert [(e["cid"], e["seq"]) for e in got] == acked
        await b.no_event("msg", 0.3)
        # and they are all there after a restart
        assert srv.stop() == 0
        srv.restart()
        c = await connect(srv)
        await c.login(b.user, PASSWORD, "dev2")
        msgs, head = await c.backlog(timeout=10)
        assert [(m["cid"], m["seq"]) for m in msgs] == acked and head == len(acked)
