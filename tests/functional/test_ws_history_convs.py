"""history paging and the convs list (ordering, unread, last, read_seq)."""
import asyncio

from conftest import uname
from harness.client import dconv

HIST_FIELDS = {"conv", "seq", "from", "body", "ts", "cid"}


async def _burst(c, to, n, prefix):
    futs = [c.start("send", to=to, body=f"{prefix}{i}", cid=f"{prefix}{i}") for i in range(n)]
    replies = await asyncio.gather(*futs)
    bad = [r for r in replies if "ok" not in r]
    assert not bad, bad[:3]
    return [r["ok"] for r in replies]


async def test_history_paging(server, login):
    a = await login(server)
    b = await login(server)
    sent = await _burst(a, b.user, 250, "h")
    conv = dconv(a.user, b.user)
    assert sorted(ok["seq"] for ok in sent) == list(range(1, 251))
    body_of = {ok["seq"]: f"h{i}" for i, ok in enumerate(sent)}
    ts_of = {ok["seq"]: ok["ts"] for ok in sent}

    def seqs(r):
        return [m["seq"] for m in r["messages"]]

    # default: the newest 50, ascending
    r = await b.ok("history", conv=conv)
    assert seqs(r) == list(range(201, 251))
    for m in r["messages"]:
        assert HIST_FIELDS <= set(m), m
        assert "ev" not in m and "inbox" not in m, m
        assert m["conv"] == conv and m["from"] == a.user
        assert m["body"] == body_of[m["seq"]] and m["cid"] == m["body"], m
        assert m["ts"] == ts_of[m["seq"]], m
    # limit is capped at 200
    r = await b.ok("history", conv=conv, limit=500)
    assert seqs(r) == list(range(51, 251))
    r = await b.ok("history", conv=conv, limit=200)
    assert seqs(r) == list(range(51, 251))
    # paging backwards with before
    r = await b.ok("history", conv=conv, before=51, limit=30)
    assert seqs(r) == list(range(21, 51))
    r = await b.ok("history", conv=conv, before=21, limit=30)
    assert seqs(r) == list(range(1, 21))
    r = await b.ok("history", conv=conv, before=1)
    assert seqs(r) == []
    r = await b.ok("history", conv=conv, before=100, limit=1)
    assert seqs(r) == [99]
    r = await b.ok("history", conv=conv, before=10**9, limit=3)
    assert seqs(r) == [248, 249, 250]
    # a full walk with the default page size sees every message exactly once
    seen, before = [], None
    while True:
        args = {"conv": conv} if before is None else {"conv": conv, "before": before}
        page = seqs(await b.ok("history", **args))
        if not page:
            break
        assert page == sorted(page)
        seen = page + seen
        before = page[0]
    assert seen == list(range(1, 251))
    # the sender sees the same history
    r = await a.ok("history", conv=conv, limit=5)
    assert seqs(r) == [246, 247, 248, 249, 250]
    assert r["messages"][-1]["body"] == body_of[250]


async def test_history_errors(server, login):
    a = await login(server)
    b = await login(server)
    c = await login(server)
    await a.send_msg("x", to=b.user)
    conv = dconv(a.user, b.user)
    assert await c.err("history", conv=conv) == "forbidden"
    assert await a.err("history", conv="d:nobody_1:nobody_2") == "forbidden"
    assert await a.err("history", conv="g:AAAAAAAAAAAAAAAA") == "forbidden"
    assert await a.err("history") == "bad_request"
    assert await a.err("history", conv=5) == "bad_request"
    assert await a.err("history", conv=conv, limit="10") == "bad_request"
    assert await a.err("history", conv=conv, before="10") == "bad_request"
    assert await a.err("history", conv=conv, limit=[1]) == "bad_request"
    # still fine afterwards
    assert len((await a.ok("history", conv=conv))["messages"]) == 1


async def test_history_matches_events(server, login):
    a = await login(server)
    b = await login(server)
    oks = [await a.send_msg(f"m{i}", to=b.user, cid=f"k{i}") for i in range(3)]
    evs = await b.events_of("msg", 3)
    hist = (await b.ok("history", conv=oks[0]["conv"]))["messages"]
    for h, e, ok in zip(hist, evs, oks):
        for k in HIST_FIELDS:
            assert h[k] == e[k], (k, h, e)
        assert (h["seq"], h["ts"]) == (ok["seq"], ok["ts"])


async def test_convs_ordering_unread_last(server, login):
    me = await login(server, uname("me"))
    b = await login(server, uname("pb"))
    c = await login(server, uname("pc"))
    assert (await me.ok("convs"))["convs"] == []

    cb = dconv(me.user, b.user)
    cc = dconv(me.user, c.user)
    for i in range(3):
        await b.send_msg(f"b{i}", to=me.user)
    await c.send_msg("c0", to=me.user)

    convs = (await me.ok("convs"))["convs"]
    assert [x["conv"] for x in convs] == [cc, cb]          # most recently active first
    x_c, x_b = convs
    assert x_b["kind"] == "direct" and x_b["peer"] == b.user
    assert x_c["kind"] == "direct" and x_c["peer"] == c.user
    assert (x_b["last_seq"], x_b["read_seq"], x_b["unread"]) == (3, 0, 3)
    assert (x_c["last_seq"], x_c["read_seq"], x_c["unread"]) == (1, 0, 1)
    assert x_b["last"]["body"] == "b2" and x_b["last"]["seq"] == 3 and x_b["last"]["from"] == b.user
    assert x_b["last"]["conv"] == cb and "ev" not in x_b["last"] and "inbox" not in x_b["last"]
    assert x_c["last"]["body"] == "c0"

    # sending implies reading: me replies to b -> read_seq moves to the new seq
    r = await me.send_msg("reply", to=b.user)
    assert r["seq"] == 4
    convs = (await me.ok("convs"))["convs"]
    assert [x["conv"] for x in convs] == [cb, cc]
    x_b = convs[0]
    assert (x_b["last_seq"], x_b["read_seq"], x_b["unread"]) == (4, 4, 0)
    assert x_b["last"]["body"] == "reply" and x_b["last"]["from"] == me.user

    # b's view: b sent 1..3 (read up to 3), me's reply is unread
    bconvs = (await b.ok("convs"))["convs"]
    assert len(bconvs) == 1
    y = bconvs[0]
    assert y["conv"] == cb and y["peer"] == me.user and y["kind"] == "direct"
    assert (y["last_seq"], y["read_seq"], y["unread"]) == (4, 3, 1)
    assert y["last"]["body"] == "reply"

    # activity in the other conversation brings it back to the front
    await c.send_msg("c1", to=me.user)
    convs = (await me.ok("convs"))["convs"]
    assert [x["conv"] for x in convs] == [cc, cb]
    assert convs[0]["unread"] == 2 and convs[0]["last"]["body"] == "c1"
    for x in convs:
        assert x["unread"] == x["last_seq"] - x["read_seq"]


async def test_convs_visible_to_every_device(server, login):
    name = uname("cv")
    d1 = await login(server, name, device="d1")
    d2 = await login(server, name, device="d2", signup=False)
    p = await login(server)
    await p.send_msg("x", to=name)
    c1 = (await d1.ok("convs"))["convs"]
    c2 = (await d2.ok("convs"))["convs"]
    assert c1 == c2 and len(c1) == 1 and c1[0]["unread"] == 1
