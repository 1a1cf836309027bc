"""The store's FileIndex (chatsrv/files/catalog.py), on both adapters: records, usage,
blob counts, and the files no message carries, through the real Writer."""
from chatsrv.files.catalog import Catalog, FileRecord

from unit.storekit import Op, run_ops


def rec(fid, ts, user="a11", sha="a" * 64, size=10, thumb=None):
    return FileRecord(fid, user, f"{fid}.bin", "application/pdf", size, sha, ts, thumb=thumb)


async def test_records_usage_and_blob_counts(store):
    out, _ = await run_ops(store, [Op(lambda w: Catalog.add(w, rec("f1", 5, thumb="b" * 64))),
                                   Op(lambda w: Catalog.add(w, rec("f2", 6, size=7))),
                                   Op(lambda w: Catalog.attach(w, ["f1"], "a11", "g:x"))])
    assert all(e is None for _, e in out)
    with store.read() as r:
        assert r.file("f1").refs == {"g:x": 1} and r.file("nope") is None
        assert r.file_usage("a11") == 17 and r.file_usage("b22") == 0
        assert r.referenced_blobs() == {"a" * 64, "b" * 64}
        assert [f.id for f in r.unsent_files(100)] == ["f2"]     # f1 is carried by a message
        assert r.unsent_files(6) == []
    out, _ = await run_ops(store, [Op(lambda w: Catalog.detach(w, ["f1"], "g:x")),
                                   Op(lambda w: Catalog.forget(w, w.file("f2")))])
    assert out[0] == (["b" * 64], None) and out[1] == (["a" * 64], None)
    with store.read() as r:
        assert r.file("f1") is None and r.file("f2") is None
        assert r.file_usage("a11") == 0 and r.referenced_blobs() == set() and r.unsent_files(100) == []


async def test_a_refused_attach_changes_nothing(store):
    await run_ops(store, [Op(lambda w: Catalog.add(w, rec("f1", 5)))])
    out, _ = await run_ops(store, [Op(lambda w: Catalog.attach(w, ["f1", "missing"], "a11", "g:x"))])
    assert out[0][1] is not None and out[0][1].code == "not_found"
    with store.read() as r:
        assert r.file("f1").refs == {} and [f.id for f in r.unsent_files(100)] == ["f1"]
