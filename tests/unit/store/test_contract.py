"""The store contract, on both adapters (see conftest.py): records, the append of a
message, group commit, inbox scans, and transactions that fail alone."""
import orjson
import pytest

from chatsrv.store import AppendMessage, Conv, Membership, NotMember, PushSub

from unit.storekit import Op, run_ops

DIRECT = ("a11", "b22")


def seqs(records):
    return [orjson.loads(b"{" + r)["seq"] for r in records]


async def test_group_commit_assigns_gapless_seqs_and_inbox_positions(store):
    conv = "d:a11:b22"
    out, w = await run_ops(store, [AppendMessage("a11", conv, f"m{i}", f"c{i}", DIRECT) for i in range(300)])
    assert all(e is None for _, e in out)
    assert [r.seq for r, _ in out] == list(range(1, 301))
    assert [r.positions for r, _ in out] == [[i, i] for i in range(1, 301)]
    assert [r.inbox for r, _ in out] == list(range(1, 301))
    assert out[0][0].members == ["a11", "b22"] and not out[0][0].dup
    assert w.n_commits < 300                                         # batched
    with store.read() as r:
        assert r.inbox_head("b22") == 300 and r.last_seq(conv) == 300
        assert r.last_message(conv) == (300, out[-1][0].record)
        assert r.read_seq("a11", conv) == 300                        # sending implies reading
        assert r.read_seq("b22", conv) == 0
        assert r.conv(conv).kind == "direct" and r.members(conv) == ["a11", "b22"]
        assert r.memberships("b22") == [(conv, Membership(1, None))]


async def test_the_record_is_the_wire_tail_of_the_message(store):
    out, _ = await run_ops(store, [AppendMessage("a11", "d:a11:b22", "hé", "c1", DIRECT)])
    m = orjson.loads(b"{" + out[0][0].record)
    assert m == {"conv": "d:a11:b22", "seq": 1, "from": "a11", "ts": out[0][0].ts, "body": "hé", "cid": "c1"}


async def test_a_cid_seen_before_returns_the_first_send_and_stores_nothing(store):
    send = AppendMessage("a11", "d:a11:b22", "hello", "same", DIRECT)
    out, _ = await run_ops(store, [send, send])
    (first, _), (again, _) = out
    assert not first.dup and again.dup
    assert (again.conv, again.seq, again.ts, again.inbox) == (first.conv, first.seq, first.ts, first.inbox)
    out, _ = await run_ops(store, [send])
    assert out[0][0].dup and out[0][0].seq == 1
    with store.read() as r:
        assert r.inbox_head("b22") == 1


async def test_a_non_member_is_refused_and_the_batch_goes_on(store):
    conv = "d:a11:b22"
    out, _ = await run_ops(store, [AppendMessage("a11", conv, "x", "c1", DIRECT),
                                   AppendMessage("c33", conv, "intruder", "c2"),
                                   AppendMessage("a11", "g:nothing", "x", "c3"),
                                   AppendMessage("b22", conv, "y", "c4")])
    assert isinstance(out[1][1], NotMember) and isinstance(out[2][1], NotMember)
    assert [out[0][0].seq, out[3][0].seq] == [1, 2]
    with store.read() as r:
        assert r.inbox_head("c33") == 0 and r.last_seq(conv) == 2


async def test_a_failing_op_fails_alone_and_leaves_no_write(store):
    def bad(w):
        w.set_seen("a11", 5)
        w.append_message("a11", "d:a11:b22", "lost", "c9", DIRECT, None, None)
        raise ValueError("a bug in an op")

    out, w = await run_ops(store, [AppendMessage("a11", "d:a11:b22", "one", "c1", DIRECT), Op(bad),
                                   AppendMessage("a11", "d:a11:b22", "two", "c2", DIRECT)])
    assert isinstance(out[1][1], ValueError) and w.n_failed == 1
    assert [out[0][0].seq, out[2][0].seq] == [1, 2]                   # no gap left by the failed one
    with store.read() as r:
        assert r.last_seen("a11") == 0 and r.inbox_head("b22") == 2


async def test_history_pages_newest_first_returned_ascending(store):
    conv = "d:a11:b22"
    ops = [AppendMessage("a11", conv, f"m{i}", f"c{i}", DIRECT) for i in range(1, 26)]
    # another conversation interleaved, so scans must stop at the prefix
    ops += [AppendMessage("a11", "d:a11:c33", "x", f"o{i}", ("a11", "c33")) for i in range(5)]
    await run_ops(store, ops)
    with store.read() as r:
        assert seqs(r.history(conv, None, 10)) == list(range(16, 26))
        assert seqs(r.history(conv, 16, 10)) == list(range(6, 16))
        assert seqs(r.history(conv, 6, 10)) == list(range(1, 6))
        assert seqs(r.history(conv, 1, 10)) == []
        assert seqs(r.history(conv, None, 100, since=20)) == list(range(20, 26))
        assert r.history("d:nobody:none", None, 10) == []
        assert seqs([r.message(conv, 7)]) == [7] and r.message(conv, 26) is None and r.message(conv, 0) is None


async def test_inbox_after_and_span(store):
    ops = [AppendMessage("a11", "d:a11:b22", "1", "c1", DIRECT),
           AppendMessage("a11", "d:a11:b22", "2", "c2", DIRECT),
           Op(lambda w: w.create_conv("g:grp", Conv("group", ["a11", "b22"], "G", "a11", 1))),
           Op(lambda w: w.append_message("a11", "g:grp", None, None, None, {"action": "create"}, ["a11", "b22"])),
           AppendMessage("b22", "d:a11:b22", "3", "c3")]
    await run_ops(store, ops)
    with store.read() as r:
        positions, records = r.inbox_after("b22", 1, 10)
        assert positions == [2, 3, 4]
        assert [orjson.loads(b"{" + x)["conv"] for x in records] == ["d:a11:b22", "g:grp", "d:a11:b22"]
        assert r.inbox_after("b22", 1, 2)[0] == [2, 3] and r.inbox_after("b22", 4, 10) == ([], [])
        assert r.inbox_span("b22", 0, 4, False) == {"d:a11:b22": (3, 4), "g:grp": (1, 3)}
        assert r.inbox_span("b22", 0, 3, True) == {"d:a11:b22": (2, 2)}
        assert r.inbox_span("nobody", 0, 9, False) == {}


async def test_accounts_tokens_and_cursors(store):
    out, _ = await run_ops(store, [Op(lambda w: w.create_user("ann", "h1")), Op(lambda w: w.create_user("ann", "h2")),
                                   Op(lambda w: w.set_password_hash("ann", "h3")),
                                   Op(lambda w: w.put_token("ann", "phone", b"s1", b"m1")),
                                   Op(lambda w: w.put_token("ann", "phone", b"s2", b"m2")),
                                   Op(lambda w: w.put_token("annie", "phone", b"s3", b"m3")),
                                   Op(lambda w: w.set_cursor("ann", "phone", 7)),
                                   Op(lambda w: w.set_cursor("ann", "laptop", 3))])
    assert [r for r, _ in out[:2]] == [True, False]
    with store.read() as r:
        assert r.user("ann").pw == "h3" and r.user("nobody") is None
        assert (r.token(b"s2").user, r.token(b"s2").device, r.token(b"s2").mac) == ("ann", "phone", b"m2")
        assert r.device_tokens("ann", "phone") == [b"s1", b"s2"]
        assert r.devices("ann") == ["phone"] and r.devices("nobody") == []
        assert r.cursor("ann", "phone") == 7 and r.cursor("ann", "tablet") is None
        assert sorted(r.cursors("ann")) == [3, 7] and r.cursors("annie") == []
    await run_ops(store, [Op(lambda w: w.delete_token("ann", "phone", b"s1"))])
    with store.read() as r:
        assert r.token(b"s1") is None and r.device_tokens("ann", "phone") == [b"s2"]
    await run_ops(store, [Op(lambda w: w.delete_token("ann", "phone", b"s2")),
                          Op(lambda w: w.put_token("ann", "tablet", b"s4", b"m4"))])
    with store.read() as r:
        assert r.devices("ann") == ["tablet"]


async def test_conversations_and_memberships(store):
    g = Conv("group", ["a11", "b22"], "Team", "a11", 5)
    out, _ = await run_ops(store, [Op(lambda w: w.create_conv("g:t", g)), Op(lambda w: w.create_conv("g:t", g)),
                                   Op(lambda w: w.set_membership("a11", "g:t", Membership(1))),
                                   Op(lambda w: w.set_membership("b22", "g:t", Membership(1, 4)))])
    assert [r for r, _ in out[:2]] == [True, False]
    with store.read() as r:
        assert r.conv("g:t") == g and r.members("g:t") == ["a11", "b22"] and r.conv("g:x") is None
        assert r.membership("a11", "g:t").active and not r.membership("b22", "g:t").active
        assert r.membership("b22", "g:t").joined == 1 and r.membership("c33", "g:t") is None
    renamed = Conv("group", ["a11"], "Renamed", "a11", 5)

    def change(w):
        w.put_conv("g:t", renamed)
        # inside the transaction the change is seen, by the append too
        assert w.members("g:t") == ["a11"]
        return w.append_message("b22", "g:t", "left already", "c1", None, None, None)

    out, _ = await run_ops(store, [Op(change)])
    assert isinstance(out[0][1], NotMember)
    out, _ = await run_ops(store, [Op(lambda w: w.put_conv("g:t", renamed))])
    with store.read() as r:
        assert r.conv("g:t").name == "Renamed" and r.members("g:t") == ["a11"]


async def test_marks_seen_push_subscriptions_and_mutes(store):
    s1, s2 = PushSub("https://a.example/1", "p1", "a1", 1), PushSub("https://a.example/2", "p2", "a2", 2)
    await run_ops(store, [Op(lambda w: w.set_read("ann", "d:ann:bob", 4)),
                          Op(lambda w: w.set_delivered("ann", "d:ann:bob", 3)),
                          Op(lambda w: w.set_seen("ann", 1234)),
                          Op(lambda w: w.put_push_subscription("ann", "phone", s1)),
                          Op(lambda w: w.put_push_subscription("ann", "laptop", s2)),
                          Op(lambda w: w.put_push_subscription("annie", "phone", s2)),
                          Op(lambda w: w.put_push_subscription("ann", "phone", s2)),      # replaces
                          Op(lambda w: w.set_mute("ann", "d:ann:bob", 99))])
    with store.read() as r:
        assert r.read_seq("ann", "d:ann:bob") == 4 and r.read_seq("ann", "d:x:y") == 0
        assert r.delivered("ann", "d:ann:bob") == 3 and r.delivered("bob", "d:ann:bob") == 0
        assert r.last_seen("ann") == 1234 and r.last_seen("bob") == 0
        assert r.push_subscriptions("ann") == [("laptop", s2), ("phone", s2)]
        assert r.push_subscription("ann", "phone") == s2 and r.push_subscription("bob", "phone") is None
        assert r.muted_until("ann", "d:ann:bob") == 99 and r.muted_until("ann", "d:ann:zed") == 0
    out, _ = await run_ops(store, [Op(lambda w: w.delete_push_subscription("ann", "laptop")),
                                   Op(lambda w: w.delete_push_subscription("ann", "laptop")),
                                   Op(lambda w: w.set_mute("ann", "d:ann:bob", 0))])
    assert [bool(r) for r, _ in out[:2]] == [True, False]
    with store.read() as r:
        assert [d for d, _ in r.push_subscriptions("ann")] == ["phone"]
        assert r.muted_until("ann", "d:ann:bob") == 0


@pytest.mark.parametrize("n", [1, 3])
async def test_readers_see_only_committed_writes(store, n):
    await run_ops(store, [AppendMessage("a11", "d:a11:b22", f"m{i}", f"c{i}", DIRECT) for i in range(n)])
    with store.read() as before:
        out, _ = await run_ops(store, [AppendMessage("a11", "d:a11:b22", "late", "late", DIRECT)])
        assert before.last_seq("d:a11:b22") == n        # a read began before the commit keeps its view
    with store.read() as r:
        assert r.last_seq("d:a11:b22") == n + 1


async def test_an_account_is_listed_disabled_and_its_rows_deleted(store):
    from chatsrv.domain.accounts import AddToken
    from chatsrv.store import User

    conv = "d:a11:b22"
    with store.write() as w:
        for u in ("a11", "b22", "a1"):
            w.create_user(u, "h")
    await run_ops(store, [AddToken("a11", "phone", b"sel1", b"m"), AppendMessage("b22", conv, "x", "c1", DIRECT)])
    with store.write() as w:
        w.set_device_seen("a11", "phone", 1234)
        w.set_seen("a11", 99)
        w.put_push_subscription("a11", "phone", PushSub("https://push.example/1", "k", "a"))
        w.put_user("b22", User("h", 5, disabled=True))
    with store.read() as r:
        assert [n for n, _ in r.users()] == ["a1", "a11", "b22"]
        assert r.user("b22") == User("h", 5, True, False) and r.device_seen("a11", "phone") == 1234
        assert r.device_seen("a11", "laptop") == 0
    with store.write() as w:
        w.delete_user_rows("a11")
    with store.read() as r:
        assert r.token(b"sel1") is None and r.devices("a11") == [] and r.cursor("a11", "phone") is None
        assert r.inbox_head("a11") == 0 and r.memberships("a11") == [] and r.last_seen("a11") == 0
        assert r.push_subscriptions("a11") == [] and r.device_seen("a11", "phone") == 0
        assert r.user("a11") is not None                       # the account record is the domain's
        assert r.inbox_head("b22") == 1 and r.last_seq(conv) == 1  # nobody else's rows
        assert r.user("a1") is not None
