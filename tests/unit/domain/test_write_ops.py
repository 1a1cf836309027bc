"""The domain's write ops on the in-memory store, through a real Writer: the rules they
check against what is committed, and what they return."""
import pytest

from chatsrv.domain import errors
from chatsrv.domain.accounts import AddToken, ChangePassword, RevokeDevice
from chatsrv.domain.groups import ChangeGroup, CreateGroup
from chatsrv.domain.messages import Ack, MarkRead
from chatsrv.proto import message_record
from chatsrv.store import AppendMessage, NotMember, Unavailable
from chatsrv.store.memory import MemoryStore
from unit.storekit import run_ops


@pytest.fixture
def store():
    s = MemoryStore(message_record)
    with s.write() as w:
        for u in ("ann", "bob", "cat", "dan"):
            w.create_user(u, "h")
    return s


async def results(store, *ops):
    out, _ = await run_ops(store, list(ops))
    return [e if e is not None else r for r, e in out]


async def test_a_new_device_starts_at_the_highest_cursor_of_the_others(store):
    out = await results(store, AddToken("ann", "phone", b"s1", b"m1"), Ack("ann", "phone", 7),
                        AddToken("ann", "laptop", b"s2", b"m2"), Ack("ann", "phone", 3),
                        AddToken("ann", "phone", b"s3", b"m3"))
    assert [out[0], out[1].cursor, out[2], out[3].cursor, out[4]] == [0, 7, 7, 7, 7]   # never moves back
    assert sorted((await results(store, RevokeDevice("ann", "phone")))[0]) == [b"s1", b"s3"]
    with store.read() as r:
        assert r.token(b"s1") is None and r.token(b"s2").device == "laptop"


async def test_a_password_change_may_sign_out_every_other_device(store):
    await results(store, AddToken("ann", "phone", b"s1", b"m"), AddToken("ann", "laptop", b"s2", b"m"),
                  AddToken("ann", "tablet", b"s3", b"m"))
    out = await results(store, ChangePassword("ann", "h2"), ChangePassword("ann", "h3", keep="phone"))
    assert out == [[], ["laptop", "tablet"]]
    with store.read() as r:
        assert r.user("ann").pw == "h3" and r.devices("ann") == ["phone"]


async def test_ack_moves_the_delivered_mark_of_direct_conversations_only(store):
    g = (await results(store, CreateGroup("g:g", "ann", "G", ["bob"], 10)))[0]
    await results(store, AppendMessage("ann", "d:ann:bob", "hi", "c1", ("ann", "bob")),
                  AppendMessage("ann", "d:ann:bob", "hi", "c2"), AppendMessage("ann", "g:g", "yo", "c3"))
    acked = (await results(store, Ack("bob", "phone", 4), Ack("bob", "phone", 4)))
    assert g.message.seq == 1
    assert acked[0].cursor == 4 and acked[0].delivered == [("d:ann:bob", 2)]
    assert acked[1].delivered == []


async def test_read_is_for_members_and_never_past_the_end(store):
    await results(store, AppendMessage("ann", "d:ann:bob", "hi", "c1", ("ann", "bob")))
    out = await results(store, MarkRead("bob", "d:ann:bob", 1), MarkRead("bob", "d:ann:bob", 1),
                        MarkRead("bob", "d:ann:bob", 2), MarkRead("cat", "d:ann:bob", 1))
    assert (out[0].moved, out[0].seq, out[0].members) == (True, 1, ["ann", "bob"])
    assert (out[1].moved, out[1].seq) == (False, 1)
    assert isinstance(out[2], errors.PastEnd) and isinstance(out[3], NotMember)


async def test_group_rules(store):
    out = await results(store, CreateGroup("g:g", "ann", "G", ["bob", "zed"], 10),
                        CreateGroup("g:g", "ann", "G", ["bob", "cat"], 2),
                        CreateGroup("g:g", "ann", "G", ["bob"], 3),
                        CreateGroup("g:g", "ann", "G", ["bob"], 3),
                        ChangeGroup("g:g", "bob", "remove", ("ann",)),
                        ChangeGroup("g:g", "ann", "remove", ("cat",)),
                        ChangeGroup("g:g", "cat", "add", ("dan",), cap=3),
                        ChangeGroup("g:g", "bob", "add", ("cat", "dan"), cap=3),
                        ChangeGroup("g:g", "bob", "add", ("cat",), cap=3),
                        ChangeGroup("g:g", "bob", "add", ("cat",), cap=3),
                        ChangeGroup("d:ann:bob", "ann", "rename", name="x"))
    assert isinstance(out[0], errors.NoSuchUser) and isinstance(out[1], errors.GroupFull)
    assert out[2].members == ["ann", "bob"] and isinstance(out[3], errors.ConvExists)
    assert isinstance(out[4], errors.NotOwner) and isinstance(out[5], errors.NotInGroup)
    assert isinstance(out[6], NotMember) and isinstance(out[7], errors.GroupFull)
    assert out[8].members == ["ann", "bob", "cat"] and out[8].message.members == ["ann", "bob", "cat"]
    assert out[9] is None                                  # nothing changes
    assert isinstance(out[10], NotMember)                  # no direct conversation yet
    with store.read() as r:
        assert r.membership("cat", "g:g").joined == out[8].message.seq
        assert r.read_seq("cat", "g:g") == out[8].message.seq - 1     # what came before is not unread
    out = await results(store, ChangeGroup("g:g", "ann", "leave"), ChangeGroup("g:g", "cat", "rename", name="N"))
    assert out[0].members == ["bob", "cat"] and out[0].message.members == ["ann", "bob", "cat"]
    with store.read() as r:
        c = r.conv("g:g")
        assert (c.owner, c.name) == ("bob", "N")                     # the longest-standing member owns it
        assert not r.membership("ann", "g:g").active


def test_every_refusal_maps_to_a_protocol_error():
    cases = [(NotMember(), "forbidden"), (errors.NoSuchUser("x"), "not_found"), (errors.GroupFull(3), "too_large"),
             (errors.ConvExists(), "conflict"), (errors.NotAGroup(), "bad_request"), (errors.NotOwner(), "forbidden"),
             (errors.NotInGroup(), "not_found"), (errors.PastEnd("p"), "bad_request"),
             (Unavailable("full"), "unavailable"),
             (RuntimeError("bug"), "internal")]
    for exc, code in cases:
        e = errors.wire(7, exc)
        assert (e.rid, e.code) == (7, code), exc



async def test_deleting_an_account_leaves_its_groups_and_keeps_messages_and_name(store):
    from chatsrv.domain.accounts import CreateUser, DeleteAccount, SetDisabled

    conv = "d:ann:bob"
    out = await results(store, CreateGroup("g:one", "bob", "g", ["ann", "cat"], 10),
                        AppendMessage("bob", conv, "hi", "c1", ("ann", "bob")), AddToken("bob", "phone", b"s", b"m"))
    assert not any(isinstance(o, Exception) for o in out)
    deleted, again, created, disabled = await results(store, DeleteAccount("bob"), DeleteAccount("bob"),
                                                      CreateUser("bob", "h2"), SetDisabled("bob", True))
    assert deleted == {"devices": ["phone"], "groups": 1, "direct": 1}
    assert again is None and created is False and disabled is False      # the name stays taken
    with store.read() as r:
        g = r.conv("g:one")
        assert g.members == ["ann", "cat"] and g.owner == "ann"           # ownership passed on
        assert r.members(conv) == [] and r.membership("ann", conv) is not None
        assert r.history(conv, None, 10)                                 # the message stays
        assert r.user("bob").deleted and r.user("bob").pw == "" and r.token(b"s") is None
        assert r.memberships("bob") == [] and r.inbox_head("bob") == 0
