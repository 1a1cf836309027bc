"""send / msg / ack / backlog: delivery, offline hold, multiple devices and accounts, cid."""
import asyncio

import pytest

from conftest import uname
from harness.client import PASSWORD, dconv, now_ms

MSG_FIELDS = {"ev", "inbox", "conv", "seq", "from", "body", "ts", "cid"}


def check_msg(ev, *, inbox=None, conv=None, seq=None, frm=None, body=None, cid=None):
    assert ev["ev"] == "msg"
    missing = MSG_FIELDS - set(ev)
    assert not missing, f"msg event without {missing}: {ev!r}"
    for k in ("inbox", "seq", "ts"):
        assert isinstance(ev[k], int) and not isinstance(ev[k], bool), f"{k} not an int: {ev!r}"
    if inbox is not None:
        assert ev["inbox"] == inbox, ev
    if conv is not None:
        assert ev["conv"] == conv, ev
    if seq is not None:
        assert ev["seq"] == seq, ev
    if frm is not None:
        assert ev["from"] == frm, ev
    if body is not None:
        assert ev["body"] == body, ev
    if cid is not None:
        assert ev["cid"] == cid, ev
    assert abs(ev["ts"] - now_ms()) < 60_000, f"ts is not server time in ms: {ev!r}"


# ----------------------------------------------------------------------------- send
async def test_send_to_user_and_live_delivery(server, login):
    a = await login(server, uname("a"))
    b = await login(server, uname("b"))
    conv = dconv(a.user, b.user)
    t0 = now_ms()
    ok = await a.ok("send", to=b.user, body="hello \u00e9\u4e16\U0001F600", cid="cid-1")
    assert ok["conv"] == conv and ok["seq"] == 1
    assert t0 - 1000 <= ok["ts"] <= now_ms() + 1000
    ev = await b.event("msg")
    check_msg(ev, inbox=1, conv=conv, seq=1, frm=a.user, body="hello \u00e9\u4e16\U0001F600",
              cid="cid-1")
    assert ev["ts"] == ok["ts"]
    # the sending connection does not receive its own message
    await a.no_event("msg")

    # reply over the conv id: same conversation, next seq, next inbox position of each
    ok2 = await b.ok("send", conv=conv, body="hi back", cid="cid-1")   # cid is per user
    assert ok2["conv"] == conv and ok2["seq"] == 2
    ev2 = await a.event("msg")
    # a's inbox holds its own first message at 1, so this one is at 2
    check_msg(ev2, inbox=2, conv=conv, seq=2, frm=b.user, body="hi back", cid="cid-1")
    await b.no_event("msg")


async def test_direct_conv_id_same_for_both(server, login):
    a = await login(server, uname("zz"))
    b = await login(server, uname("aa"))
    ok1 = await a.send_msg("1", to=b.user)
    ok2 = await b.send_msg("2", to=a.user)
    assert ok1["conv"] == ok2["conv"] == dconv(a.user, b.user)
    assert ok2["seq"] == ok1["seq"] + 1


async def test_send_errors(server, login, connect):
    a = await login(server)
    b = await login(server)
    c = await login(server)
    ab = dconv(a.user, b.user)
    await a.send_msg("x", to=b.user)
    assert await a.err("send", to=uname("ghost"), body="x", cid="e1") == "not_found"
    assert await a.err("send", to=a.user, body="x", cid="e2") == "bad_request"
    # not a member / does not exist -> forbidden
    assert await c.err("send", conv=ab, body="x", cid="e3") == "forbidden"
    assert await a.err("send", conv="d:nobody_1:nobody_2", body="x", cid="e4") == "forbidden"
    assert await a.err("send", conv="g:AAAAAAAAAAAAAAAA", body="x", cid="e5") == "forbidden"
    # shape
    assert await a.err("send", body="x", cid="e6") == "bad_request"
    assert await a.err("send", to=b.user, cid="e7") == "bad_request"
    assert await a.err("send", to=b.user, body="x") == "bad_request"
    assert await a.err("send", to=b.user, body=5, cid="e8") == "bad_request"
    assert await a.err("send", to=b.user, body=None, cid="e8b") == "bad_request"
    assert await a.err("send", to=b.user, body="x", cid=7) == "bad_request"
    assert await a.err("send", to=b.user, body="x", cid="") == "bad_request"
    assert await a.err("send", to=b.user, body="x", cid="c" * 65) == "bad_request"
    assert await a.err("send", to=5, body="x", cid="e9") == "bad_request"
    assert await a.err("send", conv=5, body="x", cid="e10") == "bad_request"
    # an empty body is refused (non-empty string required)
    assert await a.err("send", to=b.user, body="", cid="e11") in ("bad_request", "too_large")
    # nothing of that reached b, and seq did not move
    ok = await a.send_msg("after errors", to=b.user, cid="c" * 64)
    assert ok["seq"] == 2
    evs = await b.events_of("msg", 2)
    assert [e["seq"] for e in evs] == [1, 2]
    await b.no_event("msg")


async def test_send_too_large_counts_utf8_bytes(server, login):
    a = await login(server)
    b = await login(server)
    # default --max-message-bytes is 16384 UTF-8 bytes
    assert (await a.send_msg("x" * 16384, to=b.user))["seq"] == 1
    assert await a.err("send", to=b.user, body="x" * 16385, cid="big1") == "too_large"
    assert (await a.send_msg("\u00e9" * 8192, to=b.user))["seq"] == 2        # 16384 bytes
    assert await a.err("send", to=b.user, body="\u00e9" * 8193, cid="big2") == "too_large"
    assert await a.err("send", to=b.user, body="\U0001F600" * 4097, cid="big3") == "too_large"
    # connection still fine; b got exactly the two accepted ones
    evs = await b.events_of("msg", 2)
    assert [len(e["body"]) for e in evs] == [16384, 8192]
    await b.no_event("msg")


async def test_from_is_authenticated_sender(server, login):
    a = await login(server)
    b = await login(server)
    c = await login(server)
    ok = await a.ok("send", to=b.user, body="spoof?", cid="sp1", **{"from": c.user})
    ev = await b.event("msg")
    assert ev["from"] == a.user
    hist = (await b.ok("history", conv=ok["conv"]))["messages"]
    assert [m["from"] for m in hist] == [a.user]
    await c.no_event("msg")


# ----------------------------------------------------------------------------- offline / backlog
async def test_offline_hold_and_backlog_order(server, login, connect):
    a = await login(server)
    c = await login(server)
    b_name = uname("off")
    reg = await connect(server)
    await reg.signup(b_name)                    # b never logged in yet
    sent = []
    for i in range(3):
        sent.append(("a", await a.send_msg(f"a{i}", to=b_name, cid=f"a{i}")))
        sent.append(("c", await c.send_msg(f"c{i}", to=b_name, cid=f"c{i}")))

    b = await connect(server)
    ok = await b.login(b_name, PASSWORD, "first")
    # the ok of login comes before any backlog event
    idx_ok = next(i for i, f in enumerate(b.frames) if f.get("ok") is ok)
    assert all("ev" not in f for f in b.frames[:idx_ok])
    msgs, head = await b.backlog()
    assert head == 6
    assert [m["inbox"] for m in msgs] == [1, 2, 3, 4, 5, 6]
    assert [m["body"] for m in msgs] == ["a0", "c0", "a1", "c1", "a2", "c2"]
    for m, (who, r) in zip(msgs, sent):
        check_msg(m, conv=r["conv"], seq=r["seq"], frm=a.user if who == "a" else c.user)
        assert m["ts"] == r["ts"]
    assert [m["seq"] for m in msgs if m["from"] == a.user] == [1, 2, 3]

    # live messages after synced continue the inbox numbering
    await a.send_msg("live", to=b_name)
    ev = await b.event("msg")
    check_msg(ev, inbox=7, seq=4, body="live")


async def test_backlog_after_cursor_and_ack(server, login, connect):
    a = await login(server)
    b = await login(server, device="phone")
    for i in range(5):
        await a.send_msg(f"m{i}", to=b.user)
    evs = await b.events_of("msg", 5)
    assert [e["inbox"] for e in evs] == [1, 2, 3, 4, 5]
    assert await b.ok("ack", upto=3) is not None
    # ack never moves the cursor back
    await b.ok("ack", upto=1)
    await b.close()

    await a.send_msg("m5", to=b.user)
    b2 = await connect(server)
    await b2.auth(b.token)
    msgs, head = await b2.backlog()
    assert head == 6
    assert [m["inbox"] for m in msgs] == [4, 5, 6]
    assert [m["body"] for m in msgs] == ["m3", "m4", "m5"]
    # without a new ack the same device gets the same backlog again
    await b2.close()
    b3 = await connect(server)
    await b3.login(b.user, PASSWORD, "phone")
    msgs, head = await b3.backlog()
    assert [m["inbox"] for m in msgs] == [4, 5, 6] and head == 6
    await b3.ok("ack", upto=6)
    await b3.close()
    b4 = await connect(server)
    await b4.auth(b.token)
    msgs, head = await b4.backlog()
    assert msgs == [] and head == 6


async def test_ack_errors(server, login):
    a = await login(server)
    b = await login(server)
    await a.send_msg("one", to=b.user)
    await b.event("msg")
    assert await b.err("ack", upto=2) == "bad_request"       # beyond the inbox head
    assert await b.err("ack", upto=1000) == "bad_request"
    assert await b.err("ack", upto="1") == "bad_request"
    assert await b.err("ack") == "bad_request"
    assert await b.err("ack", upto=1.5) == "bad_request"
    assert isinstance(await b.ok("ack", upto=1), dict)
    assert isinstance(await b.ok("ack", upto=0), dict)


async def test_first_login_device_starts_at_highest_cursor(server, login, connect):
    a = await login(server)
    b_name = uname("fl")
    b1 = await login(server, b_name, device="d1")
    b2 = await login(server, b_name, device="d2", signup=False)
    for i in range(4):
        await a.send_msg(f"m{i}", to=b_name)
    await b1.events_of("msg", 4)
    await b2.events_of("msg", 4)
    await b1.ok("ack", upto=3)
    await b2.ok("ack", upto=1)
    await b1.close()
    await b2.close()
    await a.send_msg("m4", to=b_name)
    # a brand-new device starts at max(3, 1) = 3
    b3 = await connect(server)
    await b3.login(b_name, PASSWORD, "d3")
    msgs, head = await b3.backlog()
    assert head == 5
    assert [m["inbox"] for m in msgs] == [4, 5]
    assert [m["body"] for m in msgs] == ["m3", "m4"]
    # d2 still has its own cursor (1)
    b2b = await connect(server)
    await b2b.login(b_name, PASSWORD, "d2")
    msgs, head = await b2b.backlog()
    assert [m["inbox"] for m in msgs] == [2, 3, 4, 5] and head == 5


async def test_first_device_gets_everything_held(server, login, connect):
    """A message that reached none of the user's devices is held for whichever comes first."""
    a = await login(server)
    b_name = uname("held")
    reg = await connect(server)
    await reg.signup(b_name)
    for i in range(3):
        await a.send_msg(f"h{i}", to=b_name)
    b = await connect(server)
    await b.login(b_name, PASSWORD, "tablet")
    msgs, head = await b.backlog()
    assert [m["body"] for m in msgs] == ["h0", "h1", "h2"] and head == 3


async def test_sender_inbox_holds_own_messages(server, login, connect):
    a_name = uname("own")
    a = await login(server, a_name, device="a1")
    b = await login(server)
    await a.send_msg("mine 1", to=b.user)
    await b.send_msg("theirs", to=a_name)
    await a.event("msg")
    await a.send_msg("mine 2", to=b.user)
    # a second device of a, first login: its cursor starts at a1's (0, no ack)
    a2 = await connect(server)
    await a2.login(a_name, PASSWORD, "a2")
    msgs, head = await a2.backlog()
    assert head == 3
    assert [(m["inbox"], m["from"], m["body"]) for m in msgs] == [
        (1, a_name, "mine 1"), (2, b.user, "theirs"), (3, a_name, "mine 2")]


# ----------------------------------------------------------------------------- multi-device
async def test_multi_device_delivery_and_own_cursors(server, login, connect):
    a_name, b_name = uname("ma"), uname("mb")
    a1 = await login(server, a_name, device="a-phone")
    a2 = await login(server, a_name, device="a-laptop", signup=False)
    b1 = await login(server, b_name, device="b-phone")
    b2 = await login(server, b_name, device="b-laptop", signup=False)
    b2bis = await connect(server)                     # a second connection of b-laptop
    await b2bis.auth(b2.token)
    await b2bis.backlog()

    r1 = await a1.send_msg("from a phone", to=b_name, cid="x1")
    # both of b's devices (and both connections of one device) get it, same inbox position
    e1, e2, e3 = await b1.event("msg"), await b2.event("msg"), await b2bis.event("msg")
    for e in (e1, e2, e3):
        check_msg(e, inbox=1, conv=r1["conv"], seq=1, frm=a_name, body="from a phone", cid="x1")
    # the sender's other device gets the copy (in a's inbox), the sending connection does not
    ea2 = await a2.event("msg")
    check_msg(ea2, inbox=1, conv=r1["conv"], seq=1, frm=a_name, body="from a phone", cid="x1")
    await a1.no_event("msg")

    # b replies from the laptop: a1, a2 and b1 and b2bis receive; b2 does not
    r2 = await b2.send_msg("from b laptop", conv=r1["conv"], cid="y1")
    assert r2["seq"] == 2
    for c in (a1, a2):
        check_msg(await c.event("msg"), inbox=2, seq=2, frm=b_name)
    for c in (b1, b2bis):
        check_msg(await c.event("msg"), inbox=2, seq=2, frm=b_name)
    await b2.no_event("msg", within=0.2)

    # each device has its own cursor
    await b1.ok("ack", upto=2)
    for c in (b1, b2, b2bis):
        await c.close()
    nb1 = await connect(server)
    await nb1.login(b_name, PASSWORD, "b-phone")
    msgs, head = await nb1.backlog()
    assert msgs == [] and head == 2
    nb2 = await connect(server)
    await nb2.login(b_name, PASSWORD, "b-laptop")
    msgs, head = await nb2.backlog()
    assert [m["inbox"] for m in msgs] == [1, 2] and head == 2


async def test_one_client_two_accounts(server, connect):
    """One process (one client) holds connections for two accounts at once."""
    u1, u2, peer = uname("acc1"), uname("acc2"), uname("peer")
    c1 = await connect(server)
    c2 = await connect(server)
    cp = await connect(server)
    await c1.signup(u1)
    await c2.signup(u2)
    await cp.signup(peer)
    for c, u in ((c1, u1), (c2, u2), (cp, peer)):
        await c.login(u, PASSWORD, "same-device-name")   # same device name, different users
        await c.backlog()
    await cp.send_msg("to one", to=u1)
    await cp.send_msg("to two", to=u2)
    e1 = await c1.event("msg")
    e2 = await c2.event("msg")
    assert (e1["body"], e1["conv"], e1["inbox"]) == ("to one", dconv(u1, peer), 1)
    assert (e2["body"], e2["conv"], e2["inbox"]) == ("to two", dconv(u2, peer), 1)
    await c1.no_event("msg", within=0.2)
    await c2.no_event("msg", within=0.2)
    # the two accounts talk to each other from the same process
    r = await c1.send_msg("hi me", to=u2)
    e = await c2.event("msg")
    assert e["from"] == u1 and e["conv"] == r["conv"] == dconv(u1, u2) and e["inbox"] == 2
    # each connection stays its own account
    convs1 = {x["conv"] for x in (await c1.ok("convs"))["convs"]}
    convs2 = {x["conv"] for x in (await c2.ok("convs"))["convs"]}
    assert convs1 == {dconv(u1, peer), dconv(u1, u2)}
    assert convs2 == {dconv(u2, peer), dconv(u1, u2)}
    # c1 must still not see u2's messages
    await cp.send_msg("only two", to=u2)
    assert (await c2.event("msg"))["body"] == "only two"
    await c1.no_event("msg", within=0.2)


# ----------------------------------------------------------------------------- cid
async def test_idempotent_cid(server, login):
    a = await login(server)
    b = await login(server)
    a2 = await login(server, a.user, device="other", signup=False)
    r1 = await a.ok("send", to=b.user, body="once", cid="dup-1")
    r2 = await a.ok("send", to=b.user, body="once", cid="dup-1")
    r3 = await a.ok("send", to=b.user, body="different body", cid="dup-1")
    key = lambda r: (r["conv"], r["seq"], r["ts"])  # noqa: E731
    assert key(r1) == key(r2) == key(r3)
    # the same cid from another device of the same user is the same message too
    r4 = await a2.ok("send", to=b.user, body="once", cid="dup-1")
    assert key(r4) == key(r1)
    ev = await b.event("msg")
    assert ev["body"] == "once" and ev["seq"] == r1["seq"]
    await b.no_event("msg")
    await a2.event("msg")         # a2 got the copy of the first send only
    await a2.no_event("msg", within=0.1)
    hist = (await b.ok("history", conv=r1["conv"]))["messages"]
    assert [m["body"] for m in hist] == ["once"]
    # a new cid is a new message with the next seq
    r5 = await a.send_msg("twice", to=b.user, cid="dup-2")
    assert r5["seq"] == r1["seq"] + 1
    # the same cid from another user is independent
    r6 = await b.ok("send", to=a.user, body="b's own", cid="dup-1")
    assert r6["seq"] == r5["seq"] + 1


async def test_idempotent_cid_is_per_user_not_per_conv(server, login):
    """The same cid sent again by the same user returns the first reply, whatever the target."""
    a = await login(server)
    b = await login(server)
    c = await login(server)
    r1 = await a.ok("send", to=b.user, body="first", cid="same-cid")
    r2 = await a.ok("send", to=c.user, body="elsewhere", cid="same-cid")
    assert (r2["conv"], r2["seq"], r2["ts"]) == (r1["conv"], r1["seq"], r1["ts"])
    await c.no_event("msg")


async def test_pipelined_sends_keep_order(server, login):
    a = await login(server)
    b = await login(server)
    futs = [a.start("send", to=b.user, body=f"p{i}", cid=f"p{i}") for i in range(100)]
    replies = await asyncio.gather(*futs)
    assert all("ok" in r for r in replies), [r for r in replies if "ok" not in r][:3]
    seqs = [r["ok"]["seq"] for r in replies]
    assert sorted(seqs) == list(range(1, 101))
    evs = await b.events_of("msg", 100)
    assert [e["inbox"] for e in evs] == list(range(1, 101))
    assert [e["seq"] for e in evs] == list(range(1, 101))
    by_body = {e["body"]: e["seq"] for e in evs}
    assert all(by_body[f"p{i}"] == r["ok"]["seq"] for i, r in enumerate(replies))


async def test_login_during_burst_no_gap(server, login, connect):
    """Messages committed while a device logs in reach it in the backlog or live: no gap."""
    a = await login(server)
    b_name = uname("race")
    reg = await connect(server)
    await reg.signup(b_name)
    n = 400
    futs = [a.start("send", to=b_name, body=f"r{i}", cid=f"r{i}") for i in range(n)]
    # log in while the burst is being committed
    await asyncio.wait_for(asyncio.shield(futs[n // 4]), 10)
    b = await connect(server)
    await b.login(b_name, PASSWORD, "d1")
    backlog, head = await b.backlog()
    replies = await asyncio.gather(*futs)
    assert all("ok" in r for r in replies)

    def seen():
        got = {e["inbox"] for e in backlog} | {e["inbox"] for e in b.events if e.get("ev") == "msg"}
        return True if len(got) >= n else None
    await b._wait(seen, 10, f"all {n} messages")
    live = [e for e in b.events if e.get("ev") == "msg"]
    stream = [e["inbox"] for e in backlog + live]
    dedup = []
    for p in stream:
        if p not in dedup[-1:] and p not in set(dedup):
            dedup.append(p)
    assert dedup == list(range(1, n + 1)), f"gap or disorder: {stream[:10]}...{stream[-10:]}"
    assert 0 < head <= n
    assert [e["inbox"] for e in backlog] == list(range(1, len(backlog) + 1))
