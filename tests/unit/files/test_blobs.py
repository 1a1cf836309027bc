"""Blobs on a real disk: named by sha256, synced before they are named, deduplicated,
removed only when unpinned, and swept of what nothing references."""
import hashlib
import os

import pytest

from chatsrv.files import blobs as B


def test_commit_names_the_blob_by_its_sha256(tmp_path):
    blobs = B.Blobs(str(tmp_path))
    w = blobs.writer(100)
    w.write(b"hello ")
    w.write(b"world")
    sha = blobs.commit(w)
    assert sha == hashlib.sha256(b"hello world").hexdigest()
    path = tmp_path / sha[:2] / sha[2:]
    assert path.read_bytes() == b"hello world"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path / B.TMP) == []
    assert list(blobs) == [sha] and blobs.exists(sha)


def test_data_and_directory_are_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(a, b):
        events.append(("rename", b))
        real_replace(a, b)

    monkeypatch.setattr(B.os, "fsync", fsync)
    monkeypatch.setattr(B.os, "replace", replace)
    blobs = B.Blobs(str(tmp_path))
    w = blobs.writer(10)
    w.write(b"abc")
    tmp_name = w.path
    sha = blobs.commit(w)
    shard = str(tmp_path / sha[:2])
    assert events == [("fsync", tmp_name), ("fsync", str(tmp_path)),      # the new shard directory
                      ("rename", os.path.join(shard, sha[2:])), ("fsync", shard)]


def test_writer_refuses_bytes_past_its_limit_and_abort_leaves_nothing(tmp_path):
    blobs = B.Blobs(str(tmp_path))
    w = blobs.writer(5)
    w.write(b"12345")
    with pytest.raises(B.TooLarge):
        w.write(b"6")
    assert w.size == 5
    w.abort()
    assert os.listdir(tmp_path / B.TMP) == [] and list(blobs) == []


def test_same_content_is_stored_once(tmp_path):
    blobs = B.Blobs(str(tmp_path))
    a = blobs.put(b"same")
    b = blobs.put(b"same")
    assert a == b and list(blobs) == [a] and os.listdir(tmp_path / B.TMP) == []


def test_a_pinned_blob_is_not_removed(tmp_path):
    blobs = B.Blobs(str(tmp_path))
    sha = blobs.put(b"x")               # pinned: its record is not committed yet
    assert blobs.remove(sha) is False and blobs.exists(sha)
    blobs.unpin([sha])
    assert blobs.remove(sha) is True and not blobs.exists(sha)
    assert blobs.remove(sha) is True    # already gone: nothing to do


def test_sweep_drops_unreferenced_blobs_and_unfinished_uploads(tmp_path):
    blobs = B.Blobs(str(tmp_path))
    keep, drop = blobs.put(b"keep"), blobs.put(b"drop")
    blobs.writer(10).write(b"half")
    again = B.Blobs(str(tmp_path))      # as at the next start
    assert again.sweep({keep}) == 1
    assert list(again) == [keep] and os.listdir(tmp_path / B.TMP) == []
    assert drop != keep


def test_path_refuses_what_is_not_a_sha256(tmp_path):
    blobs = B.Blobs(str(tmp_path))
    for bad in ("../../etc/passwd", "ab", "A" * 64, "g" * 64):
        with pytest.raises(ValueError):
            blobs.path(bad)
