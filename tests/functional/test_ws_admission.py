"""Admission control: past --accept-rate new connections are closed at once with 1013 and
a retry hint; after the hint a client gets in; without the option nobody is refused."""
import asyncio
import re

from conftest import http_get, uname
from harness.client import Client

HINT = re.compile(r"server busy: retry after (\d+) ms")


async def test_over_the_accept_rate_close_1013_with_a_retry_hint(make_server, connect):
    srv = make_server("--accept-rate", "1", "--accept-burst", "3")
    # seven at once: the bucket holds three, and refills one a second
    clients = list(await asyncio.gather(*(connect(srv) for _ in range(7))))
    await asyncio.sleep(0.3)
    refused = [c for c in clients if c.close_code is not None]
    served = [c for c in clients if c.close_code is None]
    assert len(served) == 3 and len(refused) == 4, [c.close_code for c in clients]
    for c in served:
        await c.signup(uname("adm"))                  # served: requests are answered
    hints = []
    for c in refused:
        assert await c.closed(3) == 1013
        m = HINT.fullmatch(c.close_reason)
        assert m, c.close_reason
        hints.append(int(m.group(1)))
        assert not c.frames                           # nothing was answered on it
    assert min(hints) >= 1000 and max(hints) > min(hints), hints     # it grows with the crowd
    await asyncio.sleep(min(hints) / 1000 * 1.5)
    again = await connect(srv)
    await again.signup(uname("adm"))                  # after the hint, in
    _, body, _ = http_get(srv.port, "/metrics")
    assert re.search(rb"^chatsrv_connections_refused_busy_total 4\.0$", body, re.M), body[:2000]
    for c in served:                                  # the served ones were never disturbed
        assert await c.err("convs") == "unauthorized"


async def test_no_admission_limit_by_default(server):
    clients = await asyncio.gather(*(Client.connect(server.url) for _ in range(100)))
    try:
        await asyncio.sleep(0.3)
        assert not [c.close_code for c in clients if c.disconnected]
    finally:
        await asyncio.gather(*(c.close() for c in clients))
