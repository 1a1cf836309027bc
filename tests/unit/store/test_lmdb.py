"""What only the LMDB adapter has: the key layout, durability across a reopen, and a
full map that fails only the write that does not fit."""
from chatsrv.store import AppendMessage, Unavailable
from chatsrv.store.lmdb import layout as L

from unit.storekit import run_ops

from .conftest import make


def test_keys_sort_by_number_under_their_prefix():
    k = L.key_u64(b"conv\0", 2**40 + 5)
    assert k[:5] == b"conv\0" and L.tail_u64(k) == 2**40 + 5
    assert L.u64(1) < L.u64(256) and L.msg(b"c", 2) < L.msg(b"c", 10)
    assert L.msg(b"conv", 7) == L.key_u64(b"conv\0", 7) and L.conv_of_msg(L.msg("é".encode(), 7)) == "é"
    assert L.pair("bob", "phone") == b"bob\0phone" and L.under("bob") == b"bob\0"


async def test_messages_and_cids_survive_a_reopen(tmp_path):
    send = AppendMessage("a11", "d:a11:b22", "hello", "same", ("a11", "b22"))
    s = make("lmdb", tmp_path)
    (first, _), = (await run_ops(s, [send]))[0]
    s.close()
    s = make("lmdb", tmp_path)
    (again, _), = (await run_ops(s, [send]))[0]
    assert again.dup and (again.seq, again.ts, again.inbox) == (first.seq, first.ts, first.inbox)
    with s.read() as r:
        assert r.inbox_head("b22") == 1 and r.history("d:a11:b22", None, 5) == [first.record]
    s.close()


async def test_a_full_map_fails_only_the_job_that_does_not_fit(tmp_path):
    s = make("lmdb", tmp_path, map_size=1 << 20)
    new = ("a11", "b22")
    out, _ = await run_ops(s, [AppendMessage("a11", "d:a11:b22", "x", "s1", new),
                               AppendMessage("a11", "d:a11:b22", "y" * (2 << 20), "big", new),
                               AppendMessage("a11", "d:a11:b22", "x", "s2", new)])
    assert out[0][1] is None and out[2][1] is None
    assert isinstance(out[1][1], Unavailable)
    assert [out[0][0].seq, out[2][0].seq] == [1, 2]      # no gap left by the failed one
    with s.read() as r:
        assert r.last_seq("d:a11:b22") == 2 and r.inbox_head("b22") == 2
    s.close()
