"""Presence watches and typing through the hub: who may watch whom, what watchers are
told after the grace, and the typing throttle."""
import asyncio


async def test_watch_needs_a_shared_conversation_and_reports_changes(domain):
    ann, bob = await domain.user("ann"), await domain.user("bob")
    assert (await domain.req(ann, "watch", users=["bob"]))["err"]["code"] == "forbidden"
    await domain.ok(ann, "send", to="bob", body="hi", cid="c1")
    [st] = (await domain.ok(ann, "watch", users=["bob"]))["presence"]
    assert (st["user"], st["state"]) == ("bob", "online")
    domain.hub.on_close(bob)
    await asyncio.sleep(0.05)                        # the grace (10 ms here)
    [ev] = ann.events("presence")
    assert (ev["user"], ev["state"]) == ("bob", "offline") and ev["last_seen"] > 0
    await domain.ok(ann, "unwatch", users=["bob"])
    assert not domain.delivery.watched("bob")


async def test_typing_goes_to_the_other_members_at_most_once_an_interval(domain):
    ann, bob = await domain.user("ann"), await domain.user("bob")
    conv = (await domain.ok(ann, "send", to="bob", body="hi", cid="c1"))["conv"]
    await domain.ok(ann, "typing", conv=conv)
    await domain.ok(ann, "typing", conv=conv)
    assert bob.events("typing") == [{"ev": "typing", "conv": conv, "user": "ann"}]
    assert ann.events("typing") == []
    cat = await domain.user("cat")
    assert (await domain.req(cat, "typing", conv=conv))["err"]["code"] == "forbidden"
