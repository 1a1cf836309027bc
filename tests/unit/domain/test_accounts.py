"""Accounts through the hub, on the in-memory store: sign-up, login with backlog replay,
token auth, requests held back while a login is in flight, logout."""
from .conftest import FakeConn


async def test_login_replays_the_backlog_then_synced(domain):
    ann = await domain.user("ann")
    bob = await domain.user("bob")
    bob_conv = (await domain.ok(ann, "send", to="bob", body="first", cid="c0"))["conv"]
    await domain.settle()
    await domain.ok(bob, "logout")
    assert bob.closed_with == 1008
    for i in range(3):
        await domain.ok(ann, "send", conv=bob_conv, body=f"m{i}", cid=f"c{i + 1}")
    late = FakeConn()
    domain.hub.on_open(late)
    await domain.ok(late, "login", user="bob", password="password1", device="d2")
    await domain.settle()
    frames = late.take()
    msgs = [f for f in frames if f.get("ev") == "msg"]
    # a new device starts where the others' cursors are: bob's first device never acked
    assert [m["body"] for m in msgs] == ["first", "m0", "m1", "m2"] and [m["inbox"] for m in msgs] == [1, 2, 3, 4]
    assert frames[-1] == {"ev": "synced", "inbox": 4}
    assert not late.replaying


async def test_auth_with_the_token_resumes_after_the_acked_position(domain):
    ann = await domain.user("ann")
    bob = FakeConn()
    domain.hub.on_open(bob)
    await domain.ok(bob, "signup", user="bob", password="password1")
    token = (await domain.ok(bob, "login", user="bob", password="password1", device="d1"))["token"]
    for i in range(3):
        await domain.ok(ann, "send", to="bob", body=f"m{i}", cid=f"c{i}")
    await domain.settle()
    await domain.ok(bob, "ack", upto=2)
    again = FakeConn()
    domain.hub.on_open(again)
    assert (await domain.ok(again, "auth", token=token)) == {"user": "bob", "device": "d1"}
    await domain.settle()
    assert [f["body"] for f in again.events("msg")] == ["m2"]
    bad = FakeConn()
    domain.hub.on_open(bad)
    assert (await domain.req(bad, "auth", token=token + "x"))["err"]["code"] == "unauthorized"


async def test_requests_during_a_login_wait_for_it_in_order(domain):
    await domain.user("ann")
    c = FakeConn()
    domain.hub.on_open(c)
    domain.hub.on_object(c, {"id": 1, "op": "login", "user": "ann", "password": "password1", "device": "d9"})
    domain.hub.on_object(c, {"id": 2, "op": "convs"})
    r = await domain.req(c, "convs")
    ids = [f.get("id") for f in c.frames if "id" in f]
    assert ids[:2] == [1, 2] and "ok" in r          # not `authenticate first`: they waited


async def test_wrong_password_and_closed_signup(domain):
    await domain.user("ann")
    c = FakeConn()
    domain.hub.on_open(c)
    assert (await domain.req(c, "login", user="ann", password="password2", device="d"))["err"]["code"] == "unauthorized"
    assert (await domain.req(c, "convs"))["err"]["code"] == "unauthorized"
    assert (await domain.req(c, "signup", user="ann", password="password1"))["err"]["code"] == "conflict"
    domain.hub.accounts.cfg.signup = False
    assert (await domain.req(c, "signup", user="zed", password="password1"))["err"]["code"] == "forbidden"
