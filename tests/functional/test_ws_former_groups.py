"""Groups a user left or was removed from, kept with their history up to the departure
(`convs`/`history` with include_left, protocol §11.1), the new owner named in the system
message of a hand-over, and mutes reported by `convs` (§12.1), over real sockets."""
from conftest import uname
from harness.client import now_ms


async def _group(owner, members, name="trip"):
    ok = await owner.ok("group_create", name=name, members=[m.user for m in members])
    for c in [owner, *members]:
        ev = await c.event("msg")
        assert ev["sys"]["action"] == "create", ev
    return ok["conv"]


async def _entry(c, conv, **args):
    convs = (await c.ok("convs", **args))["convs"]
    found = [e for e in convs if e["conv"] == conv]
    return found[0] if found else None


async def test_a_member_who_left_keeps_the_group_and_its_history_up_to_leaving(server, login):
    o, b = await login(server), await login(server)
    conv = await _group(o, [b])
    await o.send_msg("before you left", conv=conv)
    await b.event("msg")
    await b.ok("group_leave", conv=conv)
    left = await b.event("msg")
    assert left["sys"]["action"] == "leave"
    await o.event("msg")
    await o.send_msg("after you left", conv=conv)
    await o.ok("group_rename", conv=conv, name="renamed later")

    # v1 behaviour unchanged without the flag
    assert await _entry(b, conv) is None
    assert await b.err("history", conv=conv) == "forbidden"

    e = await _entry(b, conv, include_left=True)
    assert e is not None, "left group missing from convs include_left"
    assert e["kind"] == "group" and e["left"] == left["seq"], e
    assert e["name"] == "trip", e                          # the name b knew, not the later rename
    assert e["last_seq"] == left["seq"] and e["last"]["sys"]["action"] == "leave", e
    assert e["unread"] == 0, e                             # leaving is reading
    assert "left" not in await _entry(o, conv, include_left=True)

    msgs = (await b.ok("history", conv=conv, include_left=True))["messages"]
    assert [m.get("body") or m["sys"]["action"] for m in msgs] == ["create", "before you left", "leave"]
    older = (await b.ok("history", conv=conv, include_left=True, before=left["seq"], limit=1))["messages"]
    assert [m["seq"] for m in older] == [left["seq"] - 1]
    # still no way back in
    assert await b.err("send", conv=conv, body="x", cid=uname("c")) == "forbidden"
    assert await b.err("read", conv=conv, seq=left["seq"]) == "forbidden"


async def test_a_removed_member_keeps_history_and_rejoining_shows_the_group_again(server, login):
    o, b = await login(server), await login(server)
    conv = await _group(o, [b])
    await o.send_msg("hello", conv=conv)
    await b.event("msg")
    await o.ok("group_remove", conv=conv, user=b.user)
    removed = await b.event("msg")
    e = await _entry(b, conv, include_left=True)
    assert e["left"] == removed["seq"] and e["unread"] == 3, e     # b read none of it, the removal included
    msgs = (await b.ok("history", conv=conv, include_left=True))["messages"]
    assert msgs[-1]["seq"] == removed["seq"] and msgs[-1]["sys"]["action"] == "remove"

    await o.ok("group_add", conv=conv, users=[b.user])
    await b.event("msg")
    e = await _entry(b, conv, include_left=True)
    assert "left" not in e and e["name"] == "trip", e


async def test_a_hand_over_names_the_new_owner(server, login):
    o, b, c = await login(server), await login(server), await login(server)
    conv = await _group(o, [b, c])
    await c.ok("group_leave", conv=conv)                  # not the owner: no hand-over
    for x in (o, b, c):
        ev = await x.event("msg")
        assert ev["sys"]["action"] == "leave" and "owner" not in ev["sys"], ev
    await o.ok("group_leave", conv=conv)
    for x in (o, b):
        ev = await x.event("msg")
        assert ev["sys"]["action"] == "leave" and ev["sys"]["owner"] == b.user, ev
    info = await b.ok("group_info", conv=conv)
    assert info["owner"] == b.user
    hist = (await b.ok("history", conv=conv))["messages"]
    assert hist[-1]["sys"]["owner"] == b.user             # stored, not only sent


async def test_convs_reports_a_mute_until_it_ends(server, login):
    a, b = await login(server), await login(server)
    ok = await a.send_msg("hi", to=b.user)
    conv = ok["conv"]
    until = now_ms() + 3600_000
    await b.ok("mute", conv=conv, until=until)
    assert (await _entry(b, conv))["muted_until"] == until
    assert "muted_until" not in await _entry(a, conv)     # per user
    await b.ok("mute", conv=conv, until=now_ms() - 1)     # in the past: not muted
    assert "muted_until" not in await _entry(b, conv)
    await b.ok("mute", conv=conv, until=0)
    assert "muted_until" not in await _entry(b, conv)
