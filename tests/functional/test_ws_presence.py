"""Presence, typing indicators, read and delivery receipts (issue 3) over real sockets.
Each test runs its own server with short grace / interval / ping settings."""
import asyncio
import time

import pytest

from conftest import uname
from harness.client import dconv, now_ms

GRACE = 0.4          # --presence-grace for most tests
TYPING = 0.8         # --typing-interval
FAST = ["--presence-grace", str(GRACE), "--typing-interval", str(TYPING),
        "--rate", "100000", "--burst", "100000"]


@pytest.fixture
def srv(make_server):
    return make_server(*FAST)


# ----------------------------------------------------------------------------- helpers
def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_presence(ev, user, state, *, near=None):
    assert ev.get("ev") == "presence", ev
    assert ev.get("user") == user and ev.get("state") == state, ev
    assert set(ev) >= {"ev", "user", "state", "last_seen"}, ev
    assert is_int(ev["last_seen"]), ev
    if near is not None:
        assert abs(ev["last_seen"] - near) < 3000, f"last_seen {ev['last_seen']} not near {near}: {ev!r}"
    return ev


async def relogin(login, srv, c, device=None):
    return await login(srv, c.user, device=device or c.device, signup=False)


async def drop(c):
    """Close a client cleanly and wait until the connection is gone."""
    await c.close()
    assert c.disconnected


async def befriend(a, b):
    """Give a and b a direct conversation; returns its id. Consumes b's copy."""
    await a.send_msg("hi", to=b.user)
    await b.event("msg")
    return dconv(a.user, b.user)


async def group(owner, members, name="g"):
    conv = (await owner.ok("group_create", name=name, members=[m.user for m in members]))["conv"]
    return conv


async def ev_where(c, name, timeout=2.0, **match):
    """Pop the first `name` event whose fields match `match` (others stay queued)."""
    def pred():
        for i, e in enumerate(c.events):
            if e.get("ev") == name and all(e.get(k) == v for k, v in match.items()):
                return c.events.pop(i)
        return None
    return await c._wait(pred, timeout, f"event {name!r} {match!r}")


async def none_where(c, name, within=0.3, **match):
    await asyncio.sleep(within)
    got = [e for e in c.events if e.get("ev") == name and all(e.get(k) == v for k, v in match.items())]
    assert not got, f"unexpected {name!r} events: {got!r}"


async def drain_msgs(*clients, n=1):
    for c in clients:
        await c.events_of("msg", n)


# ----------------------------------------------------------------------------- presence
async def test_presence_online_offline_on_connect_and_close(srv, login):
    w = await login(srv, uname("w"))
    b1 = await login(srv, uname("b"), device="d1")
    await befriend(b1, w)

    ok = await w.ok("watch", users=[b1.user])
    pres = ok["presence"]
    assert len(pres) == 1, ok
    assert pres[0]["user"] == b1.user and pres[0]["state"] == "online", ok
    assert is_int(pres[0]["last_seen"]) and abs(pres[0]["last_seen"] - now_ms()) < 3000, ok

    # closes: one offline event, last_seen = when it went
    closed_at = now_ms()
    await drop(b1)
    check_presence(await w.event("presence", GRACE + 3), b1.user, "offline", near=closed_at)
    await w.no_event("presence", GRACE + 0.2)

    # comes online: one event, after the grace window
    t0 = time.monotonic()
    b1 = await relogin(login, srv, b1)
    ev = check_presence(await w.event("presence", GRACE + 3), b1.user, "online", near=now_ms())
    # a second device does not change the state: nothing
    b2 = await login(srv, b1.user, device="d2", signup=False)
    await w.no_event("presence", GRACE + 0.3)
    # closing one of the two devices: still online, nothing
    await drop(b1)
    await w.no_event("presence", GRACE + 0.3)
    # closing the last one: offline, last_seen = when it went
    t_close = now_ms()
    await drop(b2)
    ev = check_presence(await w.event("presence", GRACE + 3), b2.user, "offline", near=t_close)
    assert ev["last_seen"] >= t_close - 1000
    await w.no_event("presence", 0.2)
    assert time.monotonic() - t0 < 20

    # the offline user's last_seen is what a new watch reports too
    w2 = await login(srv, w.user, device="w2", signup=False)
    p = (await w2.ok("watch", users=[b2.user]))["presence"][0]
    assert p["state"] == "offline" and abs(p["last_seen"] - ev["last_seen"]) < 1000, (p, ev)


async def test_watch_reports_online_and_self(srv, login):
    w = await login(srv)
    b = await login(srv)
    await befriend(w, b)
    t = now_ms()
    pres = (await w.ok("watch", users=[b.user, w.user]))["presence"]
    by = {p["user"]: p for p in pres}
    assert set(by) == {b.user, w.user}, pres
    for u in (b.user, w.user):
        assert by[u]["state"] == "online", pres
        assert abs(by[u]["last_seen"] - t) < 3000, pres      # online: last_seen is now


async def test_presence_silent_network_loss(make_server, login, connect):
    srv = make_server(*FAST, "--ping-interval", "0.5", "--ping-timeout", "0.3")
    w = await login(srv)
    # a client that never answers pings: its network is gone without a FIN
    mute = await connect(srv, auto_pong=False)
    name = uname("mute")
    await mute.signup(name)
    await mute.login(name)
    await mute.backlog()
    await mute.send_msg("hello", to=w.user)
    await w.event("msg")
    assert (await w.ok("watch", users=[name]))["presence"][0]["state"] == "online"
    t0 = time.monotonic()
    # the watcher keeps answering pings, the mute client does not
    ev = await w.event("presence", 0.5 + 0.3 + GRACE + 3)
    check_presence(ev, name, "offline", near=now_ms())
    assert mute.pings >= 1, "the server never pinged the silent client"
    await mute.closed(2)        # the server dropped it
    assert time.monotonic() - t0 < 0.5 + 0.3 + GRACE + 3
    # the watcher, which answers pings, is still connected and served
    assert not w.disconnected
    assert await w.ok("convs")


async def test_ping_timeout_longer_than_interval(make_server, login):
    """--ping-interval and --ping-timeout are independent options: a timeout longer than
    the interval is a valid setting (interval + timeout bounds the detection time)."""
    srv = make_server(*FAST, "--ping-interval", "0.2", "--ping-timeout", "0.4")
    w = await login(srv)
    assert (await w.ok("convs"))["convs"] == []


async def test_connection_that_answers_pings_is_kept(make_server, login):
    srv = make_server(*FAST, "--ping-interval", "0.3", "--ping-timeout", "0.2")
    w = await login(srv)
    b = await login(srv)
    await befriend(b, w)
    await w.ok("watch", users=[b.user])
    await asyncio.sleep(1.5)          # several ping rounds, both idle
    assert not w.disconnected and not b.disconnected
    assert [e for e in w.events if e.get("ev") == "presence"] == []
    await b.send_msg("still here", to=w.user)
    await w.event("msg")


async def test_quick_reconnect_is_coalesced(make_server, login):
    grace = 1.0
    srv = make_server("--presence-grace", str(grace))
    w = await login(srv)
    b = await login(srv)
    await befriend(b, w)
    await w.ok("watch", users=[b.user])
    token = b.token
    # drop and come back (token auth, no password hash) well within the grace window
    await drop(b)
    b = await _auth(srv, token)
    await w.no_event("presence", grace + 0.6)
    # a flap offline -> online -> offline within one window: one event, the final state
    t = now_ms()
    await drop(b)
    b = await _auth(srv, token)
    await drop(b)
    ev = check_presence(await w.event("presence", grace + 3), b.user, "offline", near=t)
    await w.no_event("presence", grace + 0.3)
    # online -> offline -> online: again nothing for the flap, then one online
    b = await _auth(srv, token)
    ev = check_presence(await w.event("presence", grace + 3), b.user, "online")
    await drop(b)
    b = await _auth(srv, token)
    await w.no_event("presence", grace + 0.6)
    await drop(b)


_auth_clients = []


async def _auth(srv, token):
    from harness.client import Client
    c = await Client.connect(srv.url)
    _auth_clients.append(c)
    await c.auth(token)
    await c.backlog()
    return c


@pytest.fixture(autouse=True)
async def _close_auth_clients():
    yield
    while _auth_clients:
        c = _auth_clients.pop()
        assert not c.violations, c.violations
        await c.close()


async def test_watch_refused_for_stranger(srv, login, connect):
    w = await login(srv)
    friend = await login(srv)
    gmate = await login(srv)
    stranger = await login(srv)
    await befriend(w, friend)
    await group(gmate, [w])       # sharing a group is sharing a conversation
    assert await w.err("watch", users=[stranger.user]) == "forbidden"
    assert await w.err("watch", users=[friend.user, stranger.user]) == "forbidden"
    assert await w.err("watch", users=[uname("ghost")]) == "forbidden"
    # the refused request subscribed to nothing: friend's going offline is not reported
    await drop(friend)
    await w.no_event("presence", GRACE + 0.4)
    pres = (await w.ok("watch", users=[gmate.user]))["presence"]
    assert pres[0]["user"] == gmate.user and pres[0]["state"] == "online"
    # shapes and authentication
    assert await w.err("watch") == "bad_request"
    assert await w.err("watch", users=stranger.user) == "bad_request"
    assert await w.err("watch", users=[1]) == "bad_request"
    anon = await connect(srv)
    assert await anon.err("watch", users=[w.user]) == "unauthorized"
    assert await anon.err("unwatch", users=[w.user]) == "unauthorized"


async def test_unwatch_and_watch_ends_with_connection(srv, login):
    w1 = await login(srv, uname("w"), device="w1")
    w2 = await login(srv, w1.user, device="w2", signup=False)
    b = await login(srv)
    await befriend(b, w1)
    await w1.ok("watch", users=[b.user])
    await w2.ok("watch", users=[b.user])
    assert await w1.ok("unwatch", users=[b.user]) == {}
    token = b.token
    await drop(b)
    # only the connection still watching is told
    check_presence(await w2.event("presence", GRACE + 3), b.user, "offline")
    await w1.no_event("presence", 0.3)
    # a watch ends with its connection: a new connection of the same device is not subscribed
    await drop(w2)
    w2b = await relogin(login, srv, w2)
    b = await _auth(srv, token)
    await w2b.no_event("presence", GRACE + 0.4)
    await w1.no_event("presence", 0.0)


async def test_watch_ends_when_the_users_no_longer_share_a_conversation(srv, login):
    """Removed from or leaving the only group they shared, two users stop seeing each
    other's presence at that moment, both ways; a watch backed by another conversation stays."""
    owner, a, b, c, d = [await login(srv) for _ in range(5)]
    conv = await group(owner, [a, b, c, d])
    await befriend(a, c)                       # a and c also share a direct conversation
    await a.ok("watch", users=[b.user, c.user, d.user])
    await b.ok("watch", users=[a.user])
    await d.ok("watch", users=[a.user])
    await c.ok("watch", users=[a.user])
    await owner.ok("group_remove", conv=conv, user=b.user)
    await d.ok("group_leave", conv=conv)
    await c.ok("group_leave", conv=conv)
    assert await a.err("watch", users=[b.user]) == "forbidden"   # as a new watch would be
    b_token, d_token = b.token, d.token
    await drop(b)
    await drop(d)
    await none_where(a, "presence", GRACE + 0.5, user=b.user)
    await none_where(a, "presence", 0.0, user=d.user)
    b = await _auth(srv, b_token)
    d = await _auth(srv, d_token)
    await drop(a)
    await none_where(b, "presence", GRACE + 0.5, user=a.user)
    await none_where(d, "presence", 0.0, user=a.user)
    # c still shares the direct conversation with a: c hears that a went offline
    await ev_where(c, "presence", GRACE + 3, user=a.user, state="offline")


# ----------------------------------------------------------------------------- typing
async def test_typing_reaches_others_not_sender(srv, login):
    a1 = await login(srv, uname("ta"), device="d1")
    a2 = await login(srv, a1.user, device="d2", signup=False)
    b = await login(srv)
    c1 = await login(srv, uname("tc"), device="d1")
    c2 = await login(srv, c1.user, device="d2", signup=False)
    stranger = await login(srv)
    conv = await group(a1, [b, c1])
    assert await a1.ok("typing", conv=conv) == {}
    for x in (b, c1, c2):
        ev = await x.event("typing", 2)
        assert ev == {"ev": "typing", "conv": conv, "user": a1.user}, ev
    for x in (a1, a2):
        await x.no_event("typing", 0.3)
    # not stored: no message, history unchanged (only the create message)
    hist = (await b.ok("history", conv=conv))["messages"]
    assert [m["seq"] for m in hist] == [1]
    for x in (b, c1, c2, a1, a2):
        await x.events_of("msg", 1)      # the create system message only
        await x.no_event("msg", 0.0)
    # members only
    assert await stranger.err("typing", conv=conv) == "forbidden"
    assert await a1.err("typing", conv="g:aaaaaaaaaaaaaaaa") == "forbidden"
    assert await a1.err("typing") == "bad_request"
    assert await a1.err("typing", conv=5) == "bad_request"
    # direct conversations too
    d = await befriend(b, stranger)
    assert await stranger.ok("typing", conv=d) == {}
    ev = await b.event("typing", 2)
    assert ev == {"ev": "typing", "conv": d, "user": stranger.user}, ev
    for x in (a1, a2, c1, c2):
        await x.no_event("typing", 0.2)


async def test_typing_is_throttled(srv, login):
    a1 = await login(srv, uname("ta"), device="d1")
    a2 = await login(srv, a1.user, device="d2", signup=False)
    b = await login(srv)
    conv = await group(a1, [b])
    d = await befriend(a1, b)

    assert await a1.ok("typing", conv=conv) == {}
    await b.event("typing", 2)
    t_first = time.monotonic()
    # extra ones within the interval are answered ok and dropped, from any device of the user
    assert await a1.ok("typing", conv=conv) == {}
    assert await a2.ok("typing", conv=conv) == {}
    # ... but the throttle is per conversation: the direct one goes through
    assert await a1.ok("typing", conv=d) == {}
    ev = await b.event("typing", 2)
    assert ev["conv"] == d, ev
    # and per user: b typing in the group goes to a
    assert await b.ok("typing", conv=conv) == {}
    for x in (a1, a2):
        assert (await x.event("typing", 2))["user"] == b.user
    left = TYPING - (time.monotonic() - t_first) - 0.15
    assert left > 0.1, "test too slow for the typing interval"
    await b.no_event("typing", left)

    # once the interval is over, the next one is forwarded
    await asyncio.sleep(max(0.0, TYPING - (time.monotonic() - t_first)) + 0.1)
    assert await a2.ok("typing", conv=conv) == {}
    ev = await b.event("typing", 2)
    assert ev == {"ev": "typing", "conv": conv, "user": a1.user}, ev

    # a steady stream: about one forwarded per interval
    b.events.clear()
    await asyncio.sleep(TYPING + 0.05)        # leave the previous window first
    t0 = time.monotonic()
    n_sent = 0
    while time.monotonic() - t0 < 2.5 * TYPING:
        assert await a1.ok("typing", conv=conv) == {}
        n_sent += 1
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    got = [e for e in b.events if e.get("ev") == "typing" and e.get("conv") == conv]
    assert n_sent > 20
    assert 2 <= len(got) <= 3, f"{len(got)} typing events forwarded for {n_sent} sent in 2.5 intervals"


# ----------------------------------------------------------------------------- read receipts
async def test_read_receipts_reach_members_and_own_devices(srv, login):
    a1 = await login(srv, uname("ra"), device="d1")
    a2 = await login(srv, a1.user, device="d2", signup=False)
    b = await login(srv)
    c = await login(srv)
    stranger = await login(srv)
    READER = a1.user
    conv = await group(b, [a1, c])
    everyone = (a1, a2, b, c)
    await drain_msgs(*everyone)                       # the create message
    for i in range(3):
        await b.send_msg(f"m{i}", conv=conv)
    await drain_msgs(a1, a2, c, n=3)
    last = 4                                          # create + 3 messages

    for x in (a1, a2):
        g = [y for y in (await x.ok("convs"))["convs"] if y["conv"] == conv][0]
        assert (g["last_seq"], g["read_seq"], g["unread"]) == (last, 0, last), g

    assert await a1.ok("read", conv=conv, seq=2) == {}
    for x in everyone:        # the other members and all of the reader's devices, the reading one too
        ev = await ev_where(x, "read", user=READER)
        assert ev == {"ev": "read", "conv": conv, "user": a1.user, "seq": 2}, (x.user, ev)
    await none_where(stranger, "read", 0.0)
    for x in (a1, a2):
        g = [y for y in (await x.ok("convs"))["convs"] if y["conv"] == conv][0]
        assert (g["last_seq"], g["read_seq"], g["unread"]) == (last, 2, last - 2), g

    # the marker does not move back, nor on the same seq: ok, no event
    assert await a2.ok("read", conv=conv, seq=1) == {}
    assert await a1.ok("read", conv=conv, seq=2) == {}
    assert await a2.ok("read", conv=conv, seq=0) == {}
    for x in everyone:
        await none_where(x, "read", 0.3 if x is a1 else 0.0, user=READER)
    # the other device reads to the end: everyone, a1 included, learns it
    assert await a2.ok("read", conv=conv, seq=last) == {}
    for x in everyone:
        ev = await ev_where(x, "read", user=READER)
        assert ev == {"ev": "read", "conv": conv, "user": a1.user, "seq": last}, ev
    convs1 = (await a1.ok("convs"))["convs"]
    convs2 = (await a2.ok("convs"))["convs"]
    assert convs1 == convs2
    g = [y for y in convs1 if y["conv"] == conv][0]
    assert (g["read_seq"], g["unread"]) == (last, 0), g
    # a device connecting later agrees too
    a3 = await login(srv, a1.user, device="d3", signup=False)
    assert (await a3.ok("convs"))["convs"] == convs1
    # others' counters are their own
    gc = [y for y in (await c.ok("convs"))["convs"] if y["conv"] == conv][0]
    assert (gc["read_seq"], gc["unread"]) == (0, last), gc

    # errors
    assert await a1.err("read", conv=conv, seq=last + 1) == "bad_request"
    assert await stranger.err("read", conv=conv, seq=1) == "forbidden"
    assert await a1.err("read", conv="g:aaaaaaaaaaaaaaaa", seq=1) == "forbidden"
    assert await a1.err("read", conv=conv) == "bad_request"
    assert await a1.err("read", conv=conv, seq="2") == "bad_request"
    assert await a1.err("read", seq=2) == "bad_request"
    for x in everyone:
        await none_where(x, "read", 0.2 if x is a1 else 0.0, user=READER)


async def test_read_receipt_in_direct_conversation(srv, login):
    a1 = await login(srv, uname("ra"), device="d1")
    a2 = await login(srv, a1.user, device="d2", signup=False)
    b1 = await login(srv, uname("rb"), device="d1")
    b2 = await login(srv, b1.user, device="d2", signup=False)
    READER = b1.user
    for i in range(3):
        await a1.send_msg(f"m{i}", to=b1.user)
    conv = dconv(a1.user, b1.user)
    await drain_msgs(b1, b2, a2, n=3)
    assert await b2.ok("read", conv=conv, seq=3) == {}
    for x in (a1, a2, b1, b2):
        ev = await ev_where(x, "read", user=READER)
        assert ev == {"ev": "read", "conv": conv, "user": b1.user, "seq": 3}, ev
    for x in (b1, b2):
        y = (await x.ok("convs"))["convs"][0]
        assert (y["conv"], y["last_seq"], y["read_seq"], y["unread"]) == (conv, 3, 3, 0), y
    for x in (a1, a2):      # a sent everything: read up to 3 by sending
        y = (await x.ok("convs"))["convs"][0]
        assert (y["last_seq"], y["read_seq"], y["unread"]) == (3, 3, 0), y


# ----------------------------------------------------------------------------- delivery receipts
async def test_delivery_receipts_reach_the_sender(srv, login):
    a1 = await login(srv, uname("da"), device="d1")
    a2 = await login(srv, a1.user, device="d2", signup=False)
    b1 = await login(srv, uname("db"), device="d1")
    b2 = await login(srv, b1.user, device="d2", signup=False)
    conv = dconv(a1.user, b1.user)
    oks = [await a1.send_msg(f"m{i}", to=b1.user) for i in range(3)]
    evs = await b1.events_of("msg", 3)
    await b2.events_of("msg", 3)
    await a2.events_of("msg", 3)
    assert [e["seq"] for e in evs] == [1, 2, 3]

    # b1 acks past the first two: one coalesced receipt, to every connection of the sender
    await b1.ok("ack", upto=evs[1]["inbox"])
    for x in (a1, a2):
        ev = await x.event("delivered", 2)
        assert ev == {"ev": "delivered", "conv": conv, "user": b1.user, "seq": 2}, ev
    for x in (a1, a2):
        await x.no_event("delivered", 0.3 if x is a1 else 0.0)
    # the recipient's own connections are not told
    for x in (b1, b2):
        await x.no_event("delivered", 0.0)
    # the second device acking the same range: nothing new
    await b2.ok("ack", upto=evs[1]["inbox"])
    await a1.no_event("delivered", 0.3)
    # it acks further: the position moves to 3
    await b2.ok("ack", upto=evs[2]["inbox"])
    for x in (a1, a2):
        ev = await x.event("delivered", 2)
        assert ev == {"ev": "delivered", "conv": conv, "user": b1.user, "seq": oks[2]["seq"]}, ev
    # and the first device catching up changes nothing
    await b1.ok("ack", upto=evs[2]["inbox"])
    await a1.no_event("delivered", 0.3)
    await a2.no_event("delivered", 0.0)


async def test_delivery_receipt_after_offline_backlog(srv, login):
    a = await login(srv, uname("da"))
    c = await login(srv, uname("dc"))
    b = await login(srv, uname("db"))
    await b.close()
    # b is offline; two senders, several messages each
    for i in range(3):
        await a.send_msg(f"a{i}", to=b.user)
        await c.send_msg(f"c{i}", to=b.user)
    await a.no_event("delivered", 0.2)      # stored is not delivered
    b = await login(srv, b.user, signup=False)
    assert len(b.backlog_msgs) == 6
    await b.ok("ack", upto=b.synced_inbox)
    # one receipt per conversation, with the highest seq reached
    ev = await a.event("delivered", 2)
    assert ev == {"ev": "delivered", "conv": dconv(a.user, b.user), "user": b.user, "seq": 3}, ev
    ev = await c.event("delivered", 2)
    assert ev == {"ev": "delivered", "conv": dconv(c.user, b.user), "user": b.user, "seq": 3}, ev
    await a.no_event("delivered", 0.3)
    await c.no_event("delivered", 0.0)
    await b.no_event("delivered", 0.0)
