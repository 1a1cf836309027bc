"""Server limits and configuration: rate limit, auth timeout, map full, HTTP endpoints,
Origin checks, clean shutdown, environment variables."""
import asyncio
import time

import pytest
from picows import WSHandshakeError

from conftest import http_get, uname
from harness.client import PASSWORD, Client, dconv


# ----------------------------------------------------------------------------- HTTP
def test_healthz_metrics_index(server):
    status, body, _ = http_get(server.port, "/healthz")
    assert (status, body.strip()) == (200, b"ok")
    status, body, headers = http_get(server.port, "/metrics")
    assert status == 200
    text = body.decode()
    assert "chatsrv_" in text
    assert any(line.startswith("chatsrv_") for line in text.splitlines()), text[:500]
    assert headers.get("content-type", "").startswith("text/plain")
    status, body, _ = http_get(server.port, "/")
    assert status == 200 and body


# ----------------------------------------------------------------------------- Origin
async def test_origin_refused_403(server, connect):
    for origin in ("http://evil.example", f"http://127.0.0.1:{server.port + 1}",
                   f"https://127.0.0.1:{server.port}", f"http://127.0.0.1:{server.port}/",
                   "null"):
        with pytest.raises(WSHandshakeError) as ei:
            await Client.connect(server.url, origin=origin)
        assert ei.value.response is not None and int(ei.value.response.status) == 403, origin


async def test_origin_default_allowed_and_absent_allowed(server, connect):
    for origin in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}", None):
        c = await connect(server, origin=origin)
        await c.signup(uname("org"))


async def test_allowed_origin_option(make_server, connect):
    srv = make_server("--allowed-origin", "https://chat.example.com",
                      "--allowed-origin", "https://other.example.com")
    for origin in ("https://chat.example.com", "https://other.example.com", None):
        c = await connect(srv, origin=origin)
        await c.signup(uname("ao"))
    with pytest.raises(WSHandshakeError) as ei:
        await Client.connect(srv.url, origin="https://evil.example.com")
    assert int(ei.value.response.status) == 403


async def test_upgrade_with_two_origin_headers_refused_403(server, connect):
    """Only one Origin may be named: a second one (allowed or not) is not left unchecked."""
    own = f"http://127.0.0.1:{server.port}"
    for pair in ((own, "http://evil.example"), ("http://evil.example", own), (own, own)):
        with pytest.raises(WSHandshakeError) as ei:
            await Client.connect(server.url, headers=[("Origin", pair[0]), ("Origin", pair[1])])
        assert int(ei.value.response.status) == 403, pair
    c = await connect(server, headers=[("Origin", own)])
    await c.signup(uname("org1"))


# ----------------------------------------------------------------------------- rate limit
async def test_rate_limited(make_server, connect):
    srv = make_server("--rate", "5", "--burst", "10")
    c = await connect(srv)
    futs = [c.start("convs") for _ in range(30)]          # unauthenticated: cheap replies
    replies = await asyncio.gather(*futs)
    codes = [r["err"]["code"] if "err" in r else "ok" for r in replies]
    limited = codes.count("rate_limited")
    passed = [x for x in codes if x != "rate_limited"]
    assert set(passed) <= {"unauthorized"}, codes
    # a burst of 10 goes through (give or take a token refilled meanwhile), the rest is limited
    assert 9 <= len(passed) <= 13, codes
    assert limited == 30 - len(passed)
    # the connection stays open (30 - ~10 limited replies < --rate-close-after 100)
    assert not c.disconnected
    # another connection has its own bucket
    c2 = await connect(srv)
    assert await c2.err("convs") == "unauthorized"
    # tokens come back at 5/s: after 0.6 s there are at least 2
    await asyncio.sleep(0.6)
    assert await c.err("convs") == "unauthorized"


async def test_rate_limit_abuse_closes_1008(make_server, connect):
    srv = make_server("--rate", "5", "--burst", "10", "--rate-close-after", "5")
    c = await connect(srv)
    name = uname("abuse")
    await c.signup(name)
    await c.login(name, PASSWORD, "d1")
    await c.backlog()
    futs = [c.start("convs") for _ in range(60)]
    done = await asyncio.gather(*futs, return_exceptions=True)
    code = await c.closed(3)
    assert code == 1008
    replies = [r for r in done if isinstance(r, dict)]
    limited = [r for r in replies if r.get("err", {}).get("code") == "rate_limited"]
    assert 1 <= len(limited) <= 6, len(limited)
    # the user is not locked out: a new connection works
    c2 = await connect(srv)
    await c2.login(name, PASSWORD, "d1")
    await c2.backlog()
    assert (await c2.ok("convs"))["convs"] == []


# ----------------------------------------------------------------------------- auth timeout
async def test_auth_timeout_closes_idle_unauthenticated(make_server, connect):
    srv = make_server("--auth-timeout", "1")
    idle = await connect(srv)
    t0 = time.monotonic()                         # the server's timer for `idle` started before this
    busy = await connect(srv)                     # talks but never authenticates
    await busy.signup(uname("busy"))
    authed = await connect(srv)
    name = uname("authd")
    await authed.signup(name)
    await authed.login(name, PASSWORD, "d1")
    await authed.backlog()
    assert await idle.closed(4) == 1008
    assert await busy.closed(4) == 1008
    assert 0.5 <= idle.disconnected_at - t0 <= 3.0
    # the authenticated one is kept past the timeout
    await asyncio.sleep(max(0.0, 1.6 - (time.monotonic() - t0)))
    assert (await authed.ok("convs"))["convs"] == []
    assert not authed.disconnected


# ----------------------------------------------------------------------------- map full
async def test_map_full_answers_unavailable_and_keeps_data(make_server, connect):
    srv = make_server("--map-size", str(1 << 20), "--rate", "100000", "--burst", "100000")
    a = await connect(srv)
    b = await connect(srv)
    an, bn = uname("mfa"), uname("mfb")
    await a.signup(an)
    await b.signup(bn)
    await a.login(an, PASSWORD, "d1")
    await a.backlog()
    await b.login(bn, PASSWORD, "d1")
    await b.backlog()
    acked = {}
    body_n = 0
    unavailable = 0
    for i in range(400):                           # 400 x 16000 bytes = 6.4 MB > 1 MiB
        body = f"{i:05d}" + chr(ord("a") + i % 26) * 15995
        r = await a.req("send", to=bn, body=body, cid=f"mf{i}")
        if "ok" in r:
            acked[r["ok"]["seq"]] = body
            body_n += 1
        else:
            assert r["err"]["code"] == "unavailable", r
            unavailable += 1
            if unavailable >= 3:
                break
    assert unavailable >= 1, "the 1 MiB map never filled up"
    assert acked, "nothing was accepted before the map filled"
    conv = dconv(an, bn)
    # the server still answers other requests
    assert len((await a.ok("convs"))["convs"]) == 1
    status, body, _ = http_get(srv.port, "/healthz")
    assert (status, body.strip()) == (200, b"ok")
    # every acknowledged message is still readable, with its body
    seen = {}
    before = None
    while True:
        args = {"conv": conv, "limit": 200}
        if before is not None:
            args["before"] = before
        page = (await b.ok("history", **args))["messages"]
        if not page:
            break
        for m in page:
            seen[m["seq"]] = m["body"]
        before = page[0]["seq"]
    for seq, body in acked.items():
        assert seen.get(seq) == body, f"acknowledged seq {seq} lost or changed"
    assert sorted(seen) == list(range(1, len(seen) + 1))
    # the recipient got every acknowledged message live, and nothing unacknowledged
    evs = await b.events_of("msg", len(acked), timeout=10)
    assert {e["seq"]: e["body"] for e in evs} == acked
    await b.no_event("msg", within=0.2)
    # a new connection can still authenticate (read path works)
    c = await connect(srv)
    await c.auth(b.token)
    msgs, head = await c.backlog()
    assert [m["seq"] for m in msgs] == sorted(acked)
    assert head == len(acked)


# ----------------------------------------------------------------------------- config
async def test_env_vars_configure_server(make_server, connect):
    # 3 s, not the default 10: `idle` below must be closed within 7 s; long enough for c
    # to sign up twice and log in on a loaded machine before its own timer fires
    srv = make_server(env={"CHATSRV_MAX_MESSAGE_BYTES": "100", "CHATSRV_AUTH_TIMEOUT": "3"})
    c = await connect(srv)
    a, b = uname("enva"), uname("envb")
    await c.signup(a)
    await c.signup(b)
    await c.login(a, PASSWORD, "d1")
    await c.backlog()
    assert (await c.send_msg("x" * 100, to=b))["seq"] == 1
    assert await c.err("send", to=b, body="x" * 101, cid="big") == "too_large"
    idle = await connect(srv)
    assert await idle.closed(7) == 1008


async def test_max_message_bytes_option(make_server, connect):
    srv = make_server("--max-message-bytes", "10")
    c = await connect(srv)
    a, b = uname("mma"), uname("mmb")
    await c.signup(a)
    await c.signup(b)
    await c.login(a, PASSWORD, "d1")
    await c.backlog()
    assert (await c.send_msg("\u00e9" * 5, to=b))["seq"] == 1
    assert await c.err("send", to=b, body="\u00e9" * 6, cid="big") == "too_large"


# ----------------------------------------------------------------------------- shutdown
async def test_sigterm_closes_clients_1001_and_exits_0(make_server, connect):
    srv = make_server()
    c = await connect(srv)
    name = uname("term")
    await c.signup(name)
    await c.login(name, PASSWORD, "d1")
    await c.backlog()
    idle = await connect(srv)
    loop = asyncio.get_running_loop()
    rc_fut = loop.run_in_executor(None, srv.stop)
    assert await c.closed(8) == 1001
    assert await idle.closed(8) == 1001
    assert await rc_fut == 0


def test_metrics_expose_connection_and_message_counters(server):
    status, body, _ = http_get(server.port, "/metrics")
    assert status == 200
    names = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines()
             if line.startswith("chatsrv_")}
    assert any("conn" in n for n in names), sorted(names)
    assert any("message" in n or "msg" in n for n in names), sorted(names)


# ----------------------------------------------------------------------------- keepalive
async def test_ping_timeout_closes_silent_client(make_server, connect):
    srv = make_server("--ping-interval", "1", "--ping-timeout", "1")
    silent = await connect(srv, auto_pong=False)
    alive = await connect(srv, auto_pong=False)
    alive.manual_pong = True                 # answers every ping itself (and counts them)
    t0 = time.monotonic()
    await silent.closed(5)
    assert silent.pings >= 1
    assert silent.disconnected_at - t0 <= 4.0
    # the client that answers pings is still served
    await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
    assert alive.pings >= 1
    assert not alive.disconnected
    await alive.signup(uname("png"))


# ----------------------------------------------------------------------------- slow consumer
async def test_slow_consumer_closed_1013(make_server, connect):
    """A client that stops reading is cut off with 1013 and learns it when it reads again,
    even after the close timeout: its unsent output is dropped so the CLOSE is not stuck
    behind megabytes, and the socket is not reset while the CLOSE waits in it."""
    srv = make_server("--write-buffer-limit", str(256 * 1024), "--rate", "100000",
                      "--burst", "100000", "--close-timeout", "0.5")
    a = await connect(srv)
    an, bn = uname("slowa"), uname("slowb")
    await a.signup(an)
    await a.signup(bn)
    await a.login(an, PASSWORD, "d1")
    await a.backlog()
    b = await connect(srv)
    await b.login(bn, PASSWORD, "d1")
    await b.backlog()
    b.transport.underlying_transport.pause_reading()     # b stops reading
    body = "s" * 16000
    futs = [a.start("send", to=bn, body=body, cid=f"slow{i}") for i in range(1500)]  # ~24 MB
    replies = await asyncio.wait_for(asyncio.gather(*futs), 60)
    assert all("ok" in r for r in replies), [r for r in replies if "ok" not in r][:2]
    # the sender is not held back by the slow recipient and still served
    assert (await a.ok("convs"))["convs"][0]["last_seq"] == 1500
    await asyncio.sleep(1.5)                             # well past the close timeout
    b.transport.underlying_transport.resume_reading()
    code = await b.closed(10)
    assert code == 1013, (code, b.close_reason)
    # nothing was lost for b: its device's next connection gets the whole backlog
    b2 = await connect(srv)
    await b2.login(bn, PASSWORD, "d1")
    msgs, head = await b2.backlog(timeout=30)
    assert head == 1500
    received = [e["inbox"] for e in b.frames if e.get("ev") == "msg"]
    assert len(received) < 1500, "b was never cut off"
    assert received == list(range(1, len(received) + 1)), "what b got before the cut is not a prefix"
    assert [m["inbox"] for m in msgs] == list(range(1, 1501))
