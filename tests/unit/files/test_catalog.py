"""References: a file is attachable only by its uploader, readable by members of
the conversations it was sent in, and its bytes are freed with its last reference."""
import pytest

from chatsrv.files import Catalog, FileError, FileRecord

from .dictindex import DictIndex


def rec(fid, user="alice", sha="a" * 64, size=10, thumb=None):
    return FileRecord(fid, user, f"{fid}.bin", "application/pdf", size, sha, 1, thumb=thumb)


def test_record_round_trips_and_shows_only_public_fields():
    r = FileRecord("f1", "alice", "p.jpg", "image/jpeg", 123, "a" * 64, 5, 640, 480, "b" * 64, "image/jpeg",
                   {"d:alice:bob": 2})
    assert FileRecord.from_bytes(r.to_bytes()) == r
    assert r.public() == {"id": "f1", "name": "p.jpg", "type": "image/jpeg", "size": 123,
                          "width": 640, "height": 480, "thumb": True}
    assert rec("f2").public() == {"id": "f2", "name": "f2.bin", "type": "application/pdf", "size": 10}


def test_only_the_uploader_attaches_and_nothing_changes_on_refusal():
    ix = DictIndex()
    Catalog.add(ix, rec("f1"))
    Catalog.add(ix, rec("f2", user="bob", sha="b" * 64))
    with pytest.raises(FileError) as e:
        Catalog.attach(ix, ["f1", "f2"], "alice", "g:x")
    assert e.value.code == "not_found"
    with pytest.raises(FileError):
        Catalog.attach(ix, ["nope"], "alice", "g:x")
    assert ix.file("f1").refs == {}
    [r] = Catalog.attach(ix, ["f1"], "alice", "g:x")
    assert r.refs == {"g:x": 1} and ix.file("f1").refs == {"g:x": 1}


def test_readers_are_the_uploader_and_members_of_its_conversations():
    ix = DictIndex()
    Catalog.add(ix, rec("f1"))
    members = {"g:x": {"alice", "bob"}, "g:y": {"alice", "carol"}}

    def may(user):
        return ix.file("f1").may_read(user, lambda conv: user in members.get(conv, ()))

    assert may("alice") and not may("bob") and not may("carol")
    Catalog.attach(ix, ["f1"], "alice", "g:x")
    assert may("bob") and not may("carol")
    members["g:x"].discard("bob")          # bob left the group
    assert not may("bob")


def test_bytes_are_freed_with_the_last_reference():
    ix = DictIndex()
    Catalog.add(ix, rec("f1", size=10, thumb="c" * 64))
    Catalog.add(ix, rec("f2", size=7))            # same content uploaded again
    assert ix.file_usage("alice") == 17 and ix.blob_refs == {"a" * 64: 2, "c" * 64: 1}
    Catalog.attach(ix, ["f1"], "alice", "d:alice:bob")
    Catalog.attach(ix, ["f1"], "alice", "d:alice:bob")   # sent twice
    Catalog.attach(ix, ["f1"], "alice", "g:x")
    Catalog.attach(ix, ["f2"], "alice", "g:x")
    assert Catalog.detach(ix, ["f1"], "d:alice:bob") == []
    assert Catalog.detach(ix, ["f1"], "d:alice:bob") == []
    assert ix.file("f1").refs == {"g:x": 1}
    assert Catalog.detach(ix, ["f1"], "d:alice:bob") == []   # no such reference left: ignored
    assert Catalog.detach(ix, ["f1"], "g:x") == ["c" * 64]  # the content is still f2's
    assert ix.file("f1") is None and ix.file_usage("alice") == 7
    assert Catalog.detach(ix, ["f2"], "g:x") == ["a" * 64]
    assert ix.file_usage("alice") == 0 and ix.blob_refs == {} and ix.files == {}


def test_an_upload_never_sent_is_forgotten_with_its_bytes():
    ix = DictIndex()
    Catalog.add(ix, rec("f1"))
    assert Catalog.forget(ix, ix.file("f1")) == ["a" * 64]
    assert ix.files == {} and ix.file_usage("alice") == 0
