"""store.py on a real LMDB in a temporary directory, without sockets."""
import asyncio

import lmdb
import orjson
import pytest

from chatsrv import _core
from chatsrv.store import Store, Writer, direct_conv


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path), map_size=64 << 20)
    yield s
    s.close()


async def run_jobs(store, fns, max_batch=1024):
    """Submits every fn at once and returns [(result, error)] in order, after their commits."""
    w = Writer(store, asyncio.get_running_loop(), max_batch=max_batch)
    futs = []
    for fn in fns:
        fut = asyncio.get_running_loop().create_future()
        w.submit(lambda txn, fn=fn: fn(w, txn), lambda r, e, fut=fut: fut.set_result((r, e)))
        futs.append(fut)
    w.start()
    out = await asyncio.gather(*futs)
    w.stop()
    return out, w


def test_direct_conv_id_is_the_same_for_both():
    assert direct_conv("bob", "alice") == direct_conv("alice", "bob") == "d:alice:bob"


def test_key_helpers_roundtrip():
    k = _core.key_u64(b"conv\0", 2**40 + 5)
    assert k[:5] == b"conv\0" and _core.tail_u64(k) == 2**40 + 5
    assert _core.key_u64(b"", 1) < _core.key_u64(b"", 256)


async def test_group_commit_assigns_gapless_seqs_and_inbox_positions(store):
    conv = "d:alice:bob"
    members = ["alice", "bob"]
    new = {"kind": "direct", "members": members, "ts": 1}
    fns = [lambda w, txn, i=i: w.send(txn, "alice", conv, f"m{i}", f"c{i}", new) for i in range(300)]
    out, w = await run_jobs(store, fns)
    assert all(e is None for _, e in out)
    assert [r[2] for r, _ in out] == list(range(1, 301))            # conv seq
    assert [r[6] for r, _ in out] == [[i, i] for i in range(1, 301)]  # both inboxes
    assert w.n_commits < 300                                         # batched
    with store.read() as txn:
        assert store.inbox_head(txn, "bob") == 300
        assert store.last_message(txn, conv)[0] == 300
        assert store.read_seq(txn, "alice", conv) == 300             # sending implies reading
        assert store.read_seq(txn, "bob", conv) == 0
        assert store.conv(txn, conv)["members"] == members
        assert [c for c, _ in store.user_convs(txn, "bob")] == [conv]


async def test_cid_dedupes_within_a_batch_and_after_reopen(tmp_path):
    s = Store(str(tmp_path), map_size=64 << 20)
    conv, members = "d:a11:b22", ["a11", "b22"]
    new = {"kind": "direct", "members": members, "ts": 1}
    send = lambda w, txn: w.send(txn, "a11", conv, "hello", "same", new)  # noqa: E731
    out, _ = await run_jobs(s, [send, send])
    (first, _), (again, _) = out
    assert first[0] is False and again[0] is True
    assert again[1:5] == first[1:5]
    s.close()
    s = Store(str(tmp_path), map_size=64 << 20)
    out, _ = await run_jobs(s, [send])
    assert out[0][0][0] is True and out[0][0][1:5] == first[1:5]
    with s.read() as txn:
        assert s.inbox_head(txn, "b22") == 1
    s.close()


async def test_history_pages_newest_first_returned_ascending(store):
    conv, members = "d:a11:b22", ["a11", "b22"]
    new = {"kind": "direct", "members": members, "ts": 1}
    fns = [lambda w, txn, i=i: w.send(txn, "a11", conv, f"m{i}", f"c{i}", new) for i in range(1, 26)]
    # another conversation interleaved, to be sure scans stop at the prefix
    fns += [lambda w, txn, i=i: w.send(txn, "a11", "d:a11:c33", "x", f"o{i}",
                                       {"kind": "direct", "members": ["a11", "c33"], "ts": 1}) for i in range(5)]
    await run_jobs(store, fns)
    with store.read() as txn:
        seqs = lambda recs: [orjson.loads(b"{" + r)["seq"] for r in recs]  # noqa: E731
        assert seqs(store.history(txn, conv, None, 10)) == list(range(16, 26))
        assert seqs(store.history(txn, conv, 16, 10)) == list(range(6, 16))
        assert seqs(store.history(txn, conv, 6, 10)) == list(range(1, 6))
        assert seqs(store.history(txn, conv, 1, 10)) == []
        assert seqs(store.history(txn, conv, None, 100, since=20)) == list(range(20, 26))
        assert store.history(txn, "d:nobody:none", None, 10) == []


async def test_first_device_cursor_starts_at_the_highest_of_the_others(store):
    out, _ = await run_jobs(store, [
        lambda w, txn: w.add_token(txn, "ann", "phone", b"s1", b"m1" * 16),
        lambda w, txn: w.ack(txn, "ann", "phone", 7)[0],
        lambda w, txn: w.add_token(txn, "ann", "laptop", b"s2", b"m2" * 16),
        lambda w, txn: w.ack(txn, "ann", "phone", 3)[0],    # never moves back
    ])
    assert [r for r, _ in out] == [0, 7, 7, 7]
    with store.read() as txn:
        assert store.token(txn, b"s2") == ("ann", "laptop", b"m2" * 16)
    out, _ = await run_jobs(store, [lambda w, txn: w.revoke_device(txn, "ann", "laptop")])
    assert out[0][0] == [b"s2"]
    with store.read() as txn:
        assert store.token(txn, b"s2") is None
        assert store.token(txn, b"s1") == ("ann", "phone", b"m1" * 16)


async def test_a_full_map_fails_only_the_job_that_does_not_fit(tmp_path):
    s = Store(str(tmp_path), map_size=1 << 20)
    conv, members = "d:a11:b22", ["a11", "b22"]
    new = {"kind": "direct", "members": members, "ts": 1}
    small = lambda i: lambda w, txn: w.send(txn, "a11", conv, "x", f"s{i}", new)  # noqa: E731
    huge = lambda w, txn: w.send(txn, "a11", conv, "y" * (2 << 20), "big", new)  # noqa: E731
    out, _ = await run_jobs(s, [small(1), huge, small(2)])
    assert out[0][1] is None and out[2][1] is None
    assert isinstance(out[1][1], lmdb.MapFullError)
    assert [out[0][0][2], out[2][0][2]] == [1, 2]      # no gap left by the failed one
    with s.read() as txn:
        assert s.last_message(txn, conv)[0] == 2
        assert s.inbox_head(txn, "b22") == 2
    s.close()
