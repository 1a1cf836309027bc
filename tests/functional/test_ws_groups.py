"""Group chat (issue 3) over real sockets: group_create/add/remove/leave/rename/info with
their authorisation errors, system messages, fan-out to every member's every device in
one order, removed members cut off, added members seeing messages from their addition
on, and the hand-over of ownership when the owner leaves."""
import asyncio
import re

from conftest import uname
from harness.client import dconv

GROUP_RE = re.compile(r"^g:[a-z2-7]{16}$")


# ----------------------------------------------------------------------------- helpers
def check_sys(ev, *, action, frm, conv, users=None, name=None):
    """A system message: a `msg` event with `sys` in place of `body` (and no cid)."""
    assert ev.get("ev") == "msg", ev
    assert ev.get("conv") == conv, ev
    assert ev.get("from") == frm, ev
    assert "body" not in ev, f"system message carries a body: {ev!r}"
    assert "cid" not in ev or ev["cid"] is None, f"system message carries a cid: {ev!r}"
    for k in ("inbox", "seq", "ts"):
        assert isinstance(ev.get(k), int) and not isinstance(ev[k], bool), ev
    sys_ = ev.get("sys")
    assert isinstance(sys_, dict), f"no sys object: {ev!r}"
    assert sys_.get("action") == action, ev
    if users is not None:
        assert sys_.get("users") == users, ev
    if name is not None:
        assert sys_.get("name") == name, ev
    return ev


async def next_msg(c, timeout=5.0):
    return await c.event("msg", timeout)


async def create_group(owner, members, name="grp"):
    ok = await owner.ok("group_create", name=name, members=[m.user for m in members])
    conv = ok.get("conv")
    assert isinstance(conv, str) and GROUP_RE.match(conv), ok
    return conv


async def drain_sys(conv, clients, action):
    """Every client gets the system message of `action` for `conv`; returns them."""
    out = []
    for c in clients:
        ev = await next_msg(c)
        assert ev["conv"] == conv and ev.get("sys", {}).get("action") == action, (c.user, ev)
        out.append(ev)
    return out


async def info(c, conv):
    ok = await c.ok("group_info", conv=conv)
    assert ok.get("conv") == conv, ok
    return ok


# ----------------------------------------------------------------------------- create / info
async def test_group_create_info_and_create_system_message(server, login):
    o = await login(server, uname("own"))
    o2 = await login(server, o.user, device="dev2", signup=False)
    a = await login(server, uname("ma"))
    b = await login(server, uname("mb"))
    ok = await o.ok("group_create", name="Team \u00e9", members=[a.user, b.user])
    conv = ok["conv"]
    assert GROUP_RE.match(conv), ok

    # the create system message reaches every member's every connection, the acting one too
    evs = {}
    for c in (o, o2, a, b):
        ev = check_sys(await next_msg(c), action="create", frm=o.user, conv=conv, name="Team \u00e9")
        users = ev["sys"]["users"]
        assert users[0] == o.user and sorted(users) == sorted([o.user, a.user, b.user]), ev
        assert ev["seq"] == 1, ev
        evs[id(c)] = ev
    # the creator's devices see the same inbox position (the first of a fresh user)
    assert evs[id(o)]["inbox"] == evs[id(o2)]["inbox"] == 1
    assert evs[id(a)]["inbox"] == 1 and evs[id(b)]["inbox"] == 1

    for c in (o, a, b):
        i = await info(c, conv)
        assert i["name"] == "Team \u00e9" and i["owner"] == o.user, i
        assert sorted(i["members"]) == sorted([o.user, a.user, b.user]), i

    # convs lists it as a group with its name, on every member
    for c in (o, a):
        convs = (await c.ok("convs"))["convs"]
        g = [x for x in convs if x["conv"] == conv]
        assert len(g) == 1, convs
        assert g[0]["kind"] == "group" and g[0]["name"] == "Team \u00e9", g
        assert g[0]["last_seq"] == 1 and g[0]["last"]["seq"] == 1, g
        assert g[0]["last"].get("sys", {}).get("action") == "create", g

    # history holds the system message like any other message
    hist = (await a.ok("history", conv=conv))["messages"]
    assert len(hist) == 1 and hist[0]["seq"] == 1 and hist[0]["sys"]["action"] == "create", hist
    assert "body" not in hist[0], hist

    # two groups with the same name are two conversations
    conv2 = (await o.ok("group_create", name="Team \u00e9", members=[a.user]))["conv"]
    assert conv2 != conv and GROUP_RE.match(conv2)


async def test_group_create_errors(server, login, connect):
    o = await login(server)
    a = await login(server)
    ghost = uname("ghost")
    assert await o.err("group_create", name="g", members=[a.user, ghost]) == "not_found"
    # name 1 to 100 characters
    assert await o.err("group_create", name="", members=[a.user]) == "bad_request"
    assert await o.err("group_create", name="x" * 101, members=[a.user]) == "bad_request"
    ok = await o.ok("group_create", name="\u00e9" * 100, members=[a.user])   # characters, not bytes
    assert GROUP_RE.match(ok["conv"])
    # shapes
    assert await o.err("group_create", members=[a.user]) == "bad_request"
    assert await o.err("group_create", name="g") == "bad_request"
    assert await o.err("group_create", name=5, members=[a.user]) == "bad_request"
    assert await o.err("group_create", name="g", members=a.user) == "bad_request"
    assert await o.err("group_create", name="g", members=[5]) == "bad_request"
    # nothing was created by the refused requests: only the one good group is listed
    groups = [x for x in (await a.ok("convs"))["convs"] if x["kind"] == "group"]
    assert [x["conv"] for x in groups] == [ok["conv"]], groups

    # before authentication
    anon = await connect(server)
    assert await anon.err("group_create", name="g", members=[a.user]) == "unauthorized"
    for op, args in (("group_info", {"conv": ok["conv"]}), ("group_add", {"conv": ok["conv"], "users": [a.user]}),
                     ("group_remove", {"conv": ok["conv"], "user": a.user}),
                     ("group_leave", {"conv": ok["conv"]}), ("group_rename", {"conv": ok["conv"], "name": "n"})):
        assert await anon.err(op, **args) == "unauthorized", op


async def test_group_info_authorisation(server, login):
    o = await login(server)
    a = await login(server)
    stranger = await login(server)
    conv = await create_group(o, [a])
    assert await stranger.err("group_info", conv=conv) == "forbidden"
    assert await o.err("group_info", conv="g:aaaaaaaaaaaaaaaa") == "forbidden"       # no such group
    await o.send_msg("hi", to=a.user)
    assert await o.err("group_info", conv=dconv(o.user, a.user)) == "bad_request"    # a direct conv
    assert await o.err("group_info") == "bad_request"
    assert await o.err("group_info", conv=7) == "bad_request"


# ----------------------------------------------------------------------------- add
async def test_group_add_by_any_member_and_errors(server, login):
    o = await login(server, uname("own"))
    a = await login(server, uname("ma"))
    n1 = await login(server, uname("n1"))
    n2 = await login(server, uname("n2"))
    stranger = await login(server, uname("st"))
    conv = await create_group(o, [a])
    await drain_sys(conv, [o, a], "create")

    # a plain member may add; every member, the added ones and the acting connection get it
    assert await a.ok("group_add", conv=conv, users=[n1.user, n2.user]) == {}
    for c in (o, a, n1, n2):
        ev = check_sys(await next_msg(c), action="add", frm=a.user, conv=conv, name="grp")
        assert sorted(ev["sys"]["users"]) == sorted([n1.user, n2.user]), ev
        assert ev["seq"] == 2, ev
    i = await info(n1, conv)
    assert sorted(i["members"]) == sorted([o.user, a.user, n1.user, n2.user]) and i["owner"] == o.user, i

    # adding users who are all already members: ok {}, no system message
    assert await n1.ok("group_add", conv=conv, users=[o.user, a.user]) == {}
    for c in (o, a, n1, n2):
        await c.no_event("msg", 0.2)
    assert (await o.ok("history", conv=conv))["messages"][-1]["seq"] == 2

    # unknown user -> not_found, and nobody was added
    assert await a.err("group_add", conv=conv, users=[stranger.user, uname("ghost")]) == "not_found"
    assert stranger.user not in (await info(o, conv))["members"]
    assert await stranger.err("group_info", conv=conv) == "forbidden"
    # a non-member may not add (nor add themself); a group that does not exist
    assert await stranger.err("group_add", conv=conv, users=[stranger.user]) == "forbidden"
    assert await o.err("group_add", conv="g:aaaaaaaaaaaaaaaa", users=[stranger.user]) == "forbidden"
    # a direct conversation is not a group
    await o.send_msg("d", to=a.user)
    await a.event("msg")
    assert await o.err("group_add", conv=dconv(o.user, a.user), users=[stranger.user]) == "bad_request"
    # shapes
    assert await o.err("group_add", conv=conv) == "bad_request"
    assert await o.err("group_add", conv=conv, users=stranger.user) == "bad_request"
    assert await o.err("group_add", users=[stranger.user]) == "bad_request"
    for c in (o, a, n1, n2, stranger):
        await c.no_event("msg", 0.1)


async def test_group_size_cap(make_server, login):
    srv = make_server("--max-group-members", "3")
    o = await login(srv)
    a = await login(srv)
    b = await login(srv)
    c = await login(srv)
    # creator + 3 members = 4 > 3
    assert await o.err("group_create", name="big", members=[a.user, b.user, c.user]) == "too_large"
    assert [x for x in (await a.ok("convs"))["convs"] if x["kind"] == "group"] == []
    conv = await create_group(o, [a, b])          # exactly 3
    await drain_sys(conv, [o, a, b], "create")
    assert await a.err("group_add", conv=conv, users=[c.user]) == "too_large"
    # already-members do not count twice
    assert await a.err("group_add", conv=conv, users=[o.user, c.user]) == "too_large"
    assert await a.ok("group_add", conv=conv, users=[o.user, b.user]) == {}
    assert sorted((await info(o, conv))["members"]) == sorted([o.user, a.user, b.user])
    assert await c.err("group_info", conv=conv) == "forbidden"
    # after a departure there is room again
    assert await b.ok("group_leave", conv=conv) == {}
    await drain_sys(conv, [o, a, b], "leave")
    assert await a.ok("group_add", conv=conv, users=[c.user]) == {}
    await drain_sys(conv, [o, a, c], "add")
    assert sorted((await info(c, conv))["members"]) == sorted([o.user, a.user, c.user])


# ----------------------------------------------------------------------------- remove
async def test_group_remove_owner_only_and_errors(server, login):
    o = await login(server)
    a = await login(server)
    b = await login(server)
    stranger = await login(server)
    conv = await create_group(o, [a, b])
    await drain_sys(conv, [o, a, b], "create")

    assert await a.err("group_remove", conv=conv, user=b.user) == "forbidden"      # not the owner
    assert await a.err("group_remove", conv=conv, user=o.user) == "forbidden"
    assert await o.err("group_remove", conv=conv, user=stranger.user) == "not_found"   # not a member
    assert await o.err("group_remove", conv=conv, user=uname("ghost")) == "not_found"
    assert await stranger.err("group_remove", conv=conv, user=a.user) == "forbidden"
    assert await o.err("group_remove", conv="g:aaaaaaaaaaaaaaaa", user=a.user) == "forbidden"
    await o.send_msg("d", to=a.user)
    assert await o.err("group_remove", conv=dconv(o.user, a.user), user=a.user) == "bad_request"
    assert await o.err("group_remove", conv=conv) == "bad_request"
    assert await o.err("group_remove", conv=conv, user=[a.user]) == "bad_request"
    await a.event("msg")   # the direct message
    for c in (o, a, b):
        await c.no_event("msg", 0.1)
    assert sorted((await info(o, conv))["members"]) == sorted([o.user, a.user, b.user])

    assert await o.ok("group_remove", conv=conv, user=b.user) == {}
    for c in (o, a, b):
        check_sys(await next_msg(c), action="remove", frm=o.user, conv=conv, users=[b.user], name="grp")
    assert sorted((await info(a, conv))["members"]) == sorted([o.user, a.user])
    # removing again: no longer a member
    assert await o.err("group_remove", conv=conv, user=b.user) == "not_found"


async def test_removed_member_gets_nothing_more(server, login):
    o = await login(server)
    a = await login(server)
    b1 = await login(server, uname("rm"), device="d1")
    b2 = await login(server, b1.user, device="d2", signup=False)
    conv = await create_group(o, [a, b1])
    await drain_sys(conv, [o, a, b1, b2], "create")
    await a.send_msg("before", conv=conv)
    for c in (o, b1, b2):
        ev = await next_msg(c)
        assert ev.get("body") == "before", ev

    assert await o.ok("group_remove", conv=conv, user=b1.user) == {}
    rm = {}
    for c in (o, a, b1, b2):
        rm[id(c)] = check_sys(await next_msg(c), action="remove", frm=o.user, conv=conv, users=[b1.user])
    rm_seq = rm[id(o)]["seq"]
    assert rm_seq == 3

    # later traffic of the group reaches the members but not the removed user's devices
    await a.send_msg("after1", conv=conv)
    await o.ok("group_rename", conv=conv, name="renamed")
    await a.ok("typing", conv=conv)
    await o.send_msg("after2", conv=conv)
    evs = await o.events_of("msg", 2)
    assert [e.get("body", e.get("sys", {}).get("action")) for e in evs] == ["after1", "rename"]
    await o.no_event("msg", 0.0)
    await a.events_of("msg", 2)
    for c in (b1, b2):
        await c.no_event("msg", 0.4)
        assert not [e for e in c.events if e.get("conv") == conv], c.events

    # refused: send, history, group_info, typing, read, group ops
    for c in (b1, b2):
        assert await c.err("send", conv=conv, body="x", cid="nope") == "forbidden"
        assert await c.err("history", conv=conv) == "forbidden"
        assert await c.err("group_info", conv=conv) == "forbidden"
        assert await c.err("typing", conv=conv) == "forbidden"
        assert await c.err("read", conv=conv, seq=1) == "forbidden"
        assert await c.err("group_add", conv=conv, users=[c.user]) == "forbidden"
        assert await c.err("group_rename", conv=conv, name="x") == "forbidden"
        assert await c.err("group_leave", conv=conv) == "forbidden"
        # convs no longer lists the group
        assert conv not in [x["conv"] for x in (await c.ok("convs"))["convs"]]
    # nothing the removed user tried got stored
    hist = (await o.ok("history", conv=conv))["messages"]
    assert [m["seq"] for m in hist] == [1, 2, 3, 4, 5, 6]
    assert [m.get("body") for m in hist][-3:] == ["after1", None, "after2"]

    # a device of the removed user that logs in later: its backlog (from the highest cursor
    # of the other devices, 0 here) holds the group up to the remove message, which is last
    b3 = await login(server, b1.user, device="d3", signup=False)
    msgs = [m for m in b3.backlog_msgs if m["conv"] == conv]
    assert [m["seq"] for m in msgs] == [1, 2, 3], msgs
    assert b3.backlog_msgs[-1]["conv"] == conv
    check_sys(msgs[-1], action="remove", frm=o.user, conv=conv, users=[b1.user])
    assert b3.synced_inbox == rm[id(b2)]["inbox"]


async def test_removed_member_offline_learns_from_backlog(server, login):
    o = await login(server)
    a = await login(server)
    b = await login(server)
    conv = await create_group(o, [a, b])
    await drain_sys(conv, [o, a, b], "create")
    await b.ok("ack", upto=1)
    await b.close()
    await a.send_msg("m1", conv=conv)
    assert await o.ok("group_remove", conv=conv, user=b.user) == {}
    await a.send_msg("m2", conv=conv)
    b2 = await login(server, b.user, signup=False)          # same device, cursor 1
    got = [(m["seq"], m.get("body"), m.get("sys", {}).get("action")) for m in b2.backlog_msgs]
    assert got == [(2, "m1", None), (3, None, "remove")], b2.backlog_msgs
    check_sys(b2.backlog_msgs[-1], action="remove", frm=o.user, conv=conv, users=[b.user])
    assert b2.synced_inbox == 3
    assert await b2.err("history", conv=conv) == "forbidden"
    assert await b2.err("send", conv=conv, body="x", cid="y") == "forbidden"


# ----------------------------------------------------------------------------- added member
async def test_added_member_gets_messages_from_their_addition(server, login):
    o = await login(server)
    a = await login(server)
    n1 = await login(server, uname("new"), device="d1")
    conv = await create_group(o, [a])
    await drain_sys(conv, [o, a], "create")
    await o.send_msg("old1", conv=conv)
    await a.send_msg("old2", conv=conv)
    await a.event("msg")
    await o.event("msg")
    await n1.no_event("msg", 0.1)

    assert await a.ok("group_add", conv=conv, users=[n1.user]) == {}
    add_ev = check_sys(await next_msg(n1), action="add", frm=a.user, conv=conv, users=[n1.user])
    assert add_ev["seq"] == 4 and add_ev["inbox"] == 1
    await drain_sys(conv, [o, a], "add")
    await o.send_msg("new1", conv=conv)
    ev = await next_msg(n1)
    assert (ev["seq"], ev["inbox"], ev["body"], ev["from"]) == (5, 2, "new1", o.user), ev
    assert (await next_msg(a))["body"] == "new1"

    # history starts at the add message
    hist = (await n1.ok("history", conv=conv))["messages"]
    assert [m["seq"] for m in hist] == [4, 5], hist
    assert hist[0]["sys"]["action"] == "add"
    assert (await n1.ok("history", conv=conv, before=5))["messages"][-1]["seq"] == 4
    assert (await n1.ok("history", conv=conv, before=4))["messages"] == []
    # and the full history is still there for the others
    assert [m["seq"] for m in (await o.ok("history", conv=conv))["messages"]] == [1, 2, 3, 4, 5]

    # a second device of the added user that logs in later gets the same backlog
    n1.transport.disconnect()
    await n1.closed()
    n2 = await login(server, n1.user, device="d0", signup=False)   # new device starts at the max cursor: 0
    assert [(m["seq"], m["inbox"]) for m in n2.backlog_msgs] == [(4, 1), (5, 2)], n2.backlog_msgs
    assert n2.synced_inbox == 2

    # it can send, and it is listed in convs with the group's counters
    await n2.send_msg("hello all", conv=conv)
    for c in (o, a):
        ev = await next_msg(c)
        assert (ev["seq"], ev["from"], ev["body"]) == (6, n1.user, "hello all"), ev
    x = [x for x in (await n2.ok("convs"))["convs"] if x["conv"] == conv]
    assert len(x) == 1 and x[0]["kind"] == "group" and x[0]["last_seq"] == 6 and x[0]["read_seq"] == 6, x


async def test_added_member_offline_gets_backlog_from_addition(server, login):
    o = await login(server)
    n = await login(server)
    await n.close()
    a = await login(server)
    conv = await create_group(o, [a])
    await o.send_msg("before", conv=conv)
    await o.ok("group_add", conv=conv, users=[n.user])
    await o.send_msg("after", conv=conv)
    n2 = await login(server, n.user, signup=False)
    got = [(m["seq"], m["inbox"], m.get("body"), m.get("sys", {}).get("action")) for m in n2.backlog_msgs]
    assert got == [(3, 1, None, "add"), (4, 2, "after", None)], n2.backlog_msgs


# ----------------------------------------------------------------------------- leave / ownership
async def test_group_leave(server, login):
    o = await login(server)
    a1 = await login(server, uname("lv"), device="d1")
    a2 = await login(server, a1.user, device="d2", signup=False)
    b = await login(server)
    stranger = await login(server)
    conv = await create_group(o, [a1, b])
    await drain_sys(conv, [o, a1, a2, b], "create")

    assert await stranger.err("group_leave", conv=conv) == "forbidden"
    assert await o.err("group_leave", conv="g:aaaaaaaaaaaaaaaa") == "forbidden"
    await o.send_msg("d", to=b.user)
    await b.event("msg")
    assert await o.err("group_leave", conv=dconv(o.user, b.user)) == "bad_request"
    assert await o.err("group_leave") == "bad_request"

    assert await a1.ok("group_leave", conv=conv) == {}
    for c in (o, a1, a2, b):
        check_sys(await next_msg(c), action="leave", frm=a1.user, conv=conv, users=[a1.user], name="grp")
    i = await info(o, conv)
    assert sorted(i["members"]) == sorted([o.user, b.user]) and i["owner"] == o.user, i
    await b.send_msg("bye", conv=conv)
    await o.event("msg")
    for c in (a1, a2):
        await c.no_event("msg", 0.2)
        assert await c.err("send", conv=conv, body="x", cid="z") == "forbidden"
        assert await c.err("history", conv=conv) == "forbidden"
        assert await c.err("group_info", conv=conv) == "forbidden"
        assert await c.err("group_leave", conv=conv) == "forbidden"
        assert conv not in [x["conv"] for x in (await c.ok("convs"))["convs"]]


async def test_owner_leaving_hands_ownership_to_longest_standing_member(server, login):
    # names chosen so that neither alphabetical order nor list order gives the answer
    o = await login(server, uname("mm"))
    old = await login(server, uname("zz"))      # member since creation
    mid = await login(server, uname("aa"))      # added later
    late = await login(server, uname("bb"))     # added last, by the last-joined member
    conv = await create_group(o, [old])
    await drain_sys(conv, [o, old], "create")
    await o.ok("group_add", conv=conv, users=[mid.user])
    await drain_sys(conv, [o, old, mid], "add")
    await mid.ok("group_add", conv=conv, users=[late.user])
    await drain_sys(conv, [o, old, mid, late], "add")

    assert await o.ok("group_leave", conv=conv) == {}
    await drain_sys(conv, [o, old, mid, late], "leave")
    i = await info(mid, conv)
    assert i["owner"] == old.user, i
    assert sorted(i["members"]) == sorted([old.user, mid.user, late.user]), i
    # the old owner has no rights left; the new one has the owner's
    assert await o.err("group_remove", conv=conv, user=late.user) == "forbidden"
    assert await mid.err("group_remove", conv=conv, user=late.user) == "forbidden"
    assert await old.ok("group_remove", conv=conv, user=late.user) == {}
    for c in (old, mid, late):
        check_sys(await next_msg(c), action="remove", frm=old.user, conv=conv, users=[late.user])

    # next hand-over: the new owner leaves, the only one left becomes owner
    assert await old.ok("group_leave", conv=conv) == {}
    await drain_sys(conv, [old, mid], "leave")
    i = await info(mid, conv)
    assert i["owner"] == mid.user and i["members"] == [mid.user], i
    assert await mid.ok("group_add", conv=conv, users=[o.user]) == {}
    await drain_sys(conv, [mid, o], "add")
    assert await mid.ok("group_remove", conv=conv, user=o.user) == {}


async def test_longest_standing_counts_from_the_latest_join(server, login):
    """A member who left and was added back stands from their re-addition."""
    o = await login(server, uname("mm"))
    x = await login(server, uname("aa"))
    y = await login(server, uname("zz"))
    conv = await create_group(o, [x])
    await o.ok("group_add", conv=conv, users=[y.user])
    await x.ok("group_leave", conv=conv)
    await y.ok("group_add", conv=conv, users=[x.user])
    await o.ok("group_leave", conv=conv)
    i = await info(x, conv)
    assert i["owner"] == y.user, i


# ----------------------------------------------------------------------------- rename
async def test_group_rename(server, login):
    o = await login(server)
    a = await login(server)
    stranger = await login(server)
    conv = await create_group(o, [a], name="first")
    await drain_sys(conv, [o, a], "create")
    assert await a.ok("group_rename", conv=conv, name="second") == {}     # any member
    for c in (o, a):
        check_sys(await next_msg(c), action="rename", frm=a.user, conv=conv, users=[], name="second")
    assert (await info(o, conv))["name"] == "second"
    x = [x for x in (await o.ok("convs"))["convs"] if x["conv"] == conv][0]
    assert x["name"] == "second" and x["last"]["sys"]["action"] == "rename", x

    assert await a.err("group_rename", conv=conv, name="") == "bad_request"
    assert await a.err("group_rename", conv=conv, name="n" * 101) == "bad_request"
    assert await a.err("group_rename", conv=conv) == "bad_request"
    assert await a.err("group_rename", conv=conv, name=3) == "bad_request"
    assert await stranger.err("group_rename", conv=conv, name="mine") == "forbidden"
    assert await o.err("group_rename", conv="g:aaaaaaaaaaaaaaaa", name="x") == "forbidden"
    await o.send_msg("d", to=a.user)
    await a.event("msg")
    assert await o.err("group_rename", conv=dconv(o.user, a.user), name="x") == "bad_request"
    assert (await info(a, conv))["name"] == "second"
    assert await o.ok("group_rename", conv=conv, name="\u4e16" * 100) == {}   # characters, not bytes
    ev = await next_msg(a)
    assert ev["sys"]["name"] == "\u4e16" * 100
    await o.event("msg")

    # every later system message carries the current name
    assert await o.ok("group_add", conv=conv, users=[stranger.user]) == {}
    ev = check_sys(await next_msg(stranger), action="add", frm=o.user, conv=conv, users=[stranger.user])
    assert ev["sys"]["name"] == "\u4e16" * 100


# ----------------------------------------------------------------------------- fan-out order
async def test_group_messages_reach_every_device_in_one_order(server, login):
    names = [uname("fa"), uname("fb"), uname("fc")]
    devs = {}
    for n in names:
        devs[n] = [await login(server, n, device="d1"), await login(server, n, device="d2", signup=False)]
    offline = await login(server, uname("off"))
    await offline.close()
    owner = devs[names[0]][0]
    conv = (await owner.ok("group_create", name="fan", members=names[1:] + [offline.user]))["conv"]
    for n in names:
        await drain_sys(conv, devs[n], "create")

    # three senders (device d1 of each user) pipeline their sends, interleaved
    per_sender = 15
    futs = []
    for i in range(per_sender):
        for n in names:
            futs.append((n, devs[n][0].start("send", conv=conv, body=f"{n}:{i}", cid=f"o{i}")))
    replies = {}
    for n, f in futs:
        r = await asyncio.wait_for(f, 10)
        assert "ok" in r, r
        replies[r["ok"]["seq"]] = (n, r["ok"])
    total = per_sender * len(names)
    assert sorted(replies) == list(range(2, 2 + total)), "seqs are not one contiguous sequence"
    # each sender's own messages are in the order it sent them
    for n in names:
        mine = [replies[s][1]["seq"] for s in sorted(replies) if replies[s][0] == n]
        assert mine == sorted(mine)

    def bodies_by_seq():
        out = {}
        for s, (n, _) in replies.items():
            out[s] = n
        return out

    sender_of = bodies_by_seq()
    for n in names:
        d1, d2 = devs[n]
        own = per_sender
        ev1 = await d1.events_of("msg", total - own, timeout=10)
        ev2 = await d2.events_of("msg", total, timeout=10)
        for evs in (ev1, ev2):
            seqs = [e["seq"] for e in evs]
            assert seqs == sorted(seqs), f"{n}: messages out of seq order: {seqs}"
            for e in evs:
                assert e["conv"] == conv and e["from"] == sender_of[e["seq"]], e
                assert e["body"].startswith(e["from"] + ":"), e
        # d1 (the sender) gets everything but its own sends; d2 gets everything
        assert {e["seq"] for e in ev1} == {s for s in replies if sender_of[s] != n}
        assert [e["seq"] for e in ev2] == list(range(2, 2 + total))
        # contiguous inbox positions, following the create message (inbox 1), same on both devices
        assert [e["inbox"] for e in ev2] == list(range(2, 2 + total)), [e["inbox"] for e in ev2]
        pos2 = {e["seq"]: e["inbox"] for e in ev2}
        for e in ev1:
            assert pos2[e["seq"]] == e["inbox"], (e, pos2[e["seq"]])
        # the same bytes everywhere apart from the inbox position
        by_seq = {e["seq"]: e for e in ev2}
        for e in ev1:
            a = dict(e); b = dict(by_seq[e["seq"]])
            a.pop("inbox"); b.pop("inbox")
            assert a == b
        await d1.no_event("msg", 0.0)

    # the offline member gets everything from the backlog, in the same order
    off = await login(server, offline.user, signup=False)
    assert [m["seq"] for m in off.backlog_msgs] == list(range(1, 2 + total))
    assert [m["inbox"] for m in off.backlog_msgs] == list(range(1, 2 + total))
    assert off.synced_inbox == 1 + total
    # history agrees with the live order
    hist = (await off.ok("history", conv=conv, limit=200))["messages"]
    assert [m["seq"] for m in hist] == list(range(1, 2 + total))
    assert [m.get("from") for m in hist[1:]] == [sender_of[s] for s in range(2, 2 + total)]


async def test_group_send_interleaved_with_direct_keeps_inbox_contiguous(server, login):
    o = await login(server)
    a = await login(server)
    conv = await create_group(o, [a])
    await drain_sys(conv, [o, a], "create")
    futs = []
    for i in range(10):
        futs.append(o.start("send", conv=conv, body=f"g{i}", cid=f"g{i}"))
        futs.append(o.start("send", to=a.user, body=f"d{i}", cid=f"d{i}"))
    for f in futs:
        assert "ok" in await asyncio.wait_for(f, 10)
    evs = await a.events_of("msg", 20, timeout=10)
    assert [e["inbox"] for e in evs] == list(range(2, 22))
    for c in (conv, dconv(o.user, a.user)):
        seqs = [e["seq"] for e in evs if e["conv"] == c]
        assert seqs == list(range(seqs[0], seqs[0] + 10)), seqs
