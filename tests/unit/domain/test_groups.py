"""Groups through the hub, on the in-memory store: create, add, remove, leave, rename,
info, with their system messages fanned out and their refusals answered."""


async def test_a_group_from_creation_to_hand_over(domain):
    ann, bob, cat = [await domain.user(u) for u in ("ann", "bob", "cat")]
    conv = (await domain.ok(ann, "group_create", name="Team", members=["bob"]))["conv"]
    await domain.settle()
    assert conv.startswith("g:")
    [ev] = bob.events("msg")
    assert ev["sys"] == {"action": "create", "users": ["ann", "bob"], "name": "Team"}
    assert (await domain.req(cat, "group_info", conv=conv))["err"]["code"] == "forbidden"
    await domain.ok(bob, "group_add", conv=conv, users=["cat"])
    await domain.settle()
    assert cat.events("msg")[-1]["sys"]["action"] == "add"
    assert (await domain.req(bob, "group_remove", conv=conv, user="cat"))["err"] == {
        "code": "forbidden", "msg": "only the owner may remove members"}
    await domain.ok(cat, "group_rename", conv=conv, name="Renamed")
    await domain.ok(ann, "group_leave", conv=conv)
    await domain.settle()
    assert bob.events("msg")[-1]["sys"] == {"action": "leave", "users": ["ann"], "name": "Renamed", "owner": "bob"}
    info = await domain.ok(bob, "group_info", conv=conv)
    assert info == {"conv": conv, "name": "Renamed", "owner": "bob", "members": ["bob", "cat"]}
    assert (await domain.req(ann, "send", conv=conv, body="x", cid="late"))["err"]["code"] == "forbidden"


async def test_group_limits_and_unknown_users(domain):
    ann = await domain.user("ann")
    await domain.user("bob")
    r = await domain.req(ann, "group_create", name="Big", members=["bob", "u1x", "u2x", "u3x"])
    assert r["err"] == {"code": "too_large", "msg": "a group has at most 4 members"}
    r = await domain.req(ann, "group_create", name="G", members=["bob", "nobody"])
    assert r["err"] == {"code": "not_found", "msg": "no such user: nobody"}
    conv = (await domain.ok(ann, "group_create", name="G", members=[]))["conv"]
    assert (await domain.req(ann, "group_add", conv=conv, users=["zzz"]))["err"]["code"] == "not_found"
    direct = (await domain.ok(ann, "send", to="bob", body="hi", cid="c1"))["conv"]
    assert (await domain.req(ann, "group_info", conv=direct))["err"]["code"] == "bad_request"
