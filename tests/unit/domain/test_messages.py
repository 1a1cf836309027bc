"""Messages through the hub, on the in-memory store: send, fan-out to the other
connections and the notifier, ack and delivered, read, history and convs."""
from chatsrv import convid


async def test_send_fans_out_to_the_members_and_the_notifier(domain):
    ann = await domain.user("ann")
    bob = await domain.user("bob")
    ann2 = await domain.login("ann", "d2")
    ok = await domain.ok(ann, "send", to="bob", body="hi", cid="c1")
    await domain.settle()
    assert ok["conv"] == convid.direct("ann", "bob") and ok["seq"] == 1
    [ev] = bob.events("msg")
    assert (ev["from"], ev["body"], ev["inbox"]) == ("ann", "hi", 1)
    assert ann.events("msg") == []                      # not echoed to the sending connection
    assert [e["body"] for e in ann2.events("msg")] == ["hi"]     # but to the sender's other devices
    assert domain.notifier.deliveries == [(["ann", "bob"], {k: ev[k] for k in ev if k not in ("ev", "inbox")})]
    again = await domain.ok(ann, "send", conv=ok["conv"], body="hi", cid="c1")     # a resend: the same answer
    assert again == ok


async def test_send_refusals(domain):
    ann = await domain.user("ann")
    await domain.user("bob")
    cat = await domain.user("cat")
    conv = (await domain.ok(ann, "send", to="bob", body="hi", cid="c1"))["conv"]
    assert (await domain.req(cat, "send", conv=conv, body="x", cid="c2"))["err"]["code"] == "forbidden"
    assert (await domain.req(ann, "send", to="ann", body="x", cid="c3"))["err"]["code"] == "bad_request"
    assert (await domain.req(ann, "send", to="nobody", body="x", cid="c4"))["err"]["code"] == "not_found"
    assert (await domain.req(cat, "history", conv=conv))["err"] == {"code": "forbidden",
                                                                  "msg": "not a member of this conversation"}


async def test_ack_tells_the_sender_delivered_and_read_tells_the_members(domain):
    ann = await domain.user("ann")
    bob = await domain.user("bob")
    conv = (await domain.ok(ann, "send", to="bob", body="hi", cid="c1"))["conv"]
    await domain.settle()
    await domain.ok(bob, "ack", upto=1)
    await domain.settle()
    assert ann.events("delivered") == [{"ev": "delivered", "conv": conv, "user": "bob", "seq": 1}]
    assert (await domain.req(bob, "ack", upto=5))["err"]["code"] == "bad_request"
    await domain.ok(bob, "read", conv=conv, seq=1)
    await domain.settle()
    assert ann.events("read") == [{"ev": "read", "conv": conv, "user": "bob", "seq": 1}]
    assert domain.notifier.reads == [("bob", "d1", conv, 1)]
    assert (await domain.req(bob, "read", conv=conv, seq=2))["err"]["code"] == "bad_request"


async def test_history_and_convs(domain):
    ann = await domain.user("ann")
    await domain.user("bob")
    conv = None
    for i in range(5):
        conv = (await domain.ok(ann, "send", to="bob", body=f"m{i}", cid=f"c{i}"))["conv"]
    h = await domain.ok(ann, "history", conv=conv, before=5, limit=2)
    assert [m["body"] for m in h["messages"]] == ["m2", "m3"]
    [item] = (await domain.ok(ann, "convs"))["convs"]
    assert (item["conv"], item["peer"], item["last_seq"], item["unread"]) == (conv, "bob", 5, 0)
