"""Uploads from open to record: declared sizes, quota, uploads in flight, and the
bytes made durable (an opaque file as sent; an image verified and cleaned)."""
import hashlib
import io
import os

import pytest
from PIL import Image

from chatsrv.files import Blobs, Catalog, FileError, Limits, Uploads, complete

from .dictindex import DictIndex
from harness.imagekit import photo, png_bomb

LIMITS = Limits(max_file_bytes=1000, quota=2500, max_uploads=2, max_image_pixels=64_000_000)


@pytest.fixture
def blobs(tmp_path):
    return Blobs(str(tmp_path / "files"))


def code(excinfo):
    return excinfo.value.code


def test_opaque_file_is_stored_as_sent(blobs):
    ups = Uploads(blobs, LIMITS)
    up = ups.open("conn1", "alice", "notes.txt", "text/plain", 11, usage=0)
    ups.write("conn1", up.handle, b"hello ")
    ups.write("conn1", up.handle, b"world")
    assert ups.finish("conn1", up.handle) is up and len(ups) == 0
    rec = complete(blobs, up, LIMITS.max_image_pixels, now_ms=7)
    assert (rec.user, rec.name, rec.type, rec.size, rec.ts) == ("alice", "notes.txt", "text/plain", 11, 7)
    assert rec.sha256 == hashlib.sha256(b"hello world").hexdigest() and rec.width is None and rec.thumb is None
    with open(blobs.path(rec.sha256), "rb") as f:
        assert f.read() == b"hello world"
    assert os.listdir(os.path.join(blobs.root, "tmp")) == []
    assert len(rec.id) == 16 and rec.id != rec.sha256[:16]
    ups.settle(up, rec)
    assert blobs.remove(rec.sha256)          # unpinned once settled


def test_size_name_and_type_are_checked_on_open(blobs):
    ups = Uploads(blobs, LIMITS)
    with pytest.raises(FileError) as e:
        ups.open("c", "alice", "big.bin", None, 1001, usage=0)
    assert code(e) == "too_large"
    for name in ("", "a/b", "..", "x\ny", "a\\b", 7, "n" * 256):
        with pytest.raises(FileError) as e:
            ups.open("c", "alice", name, None, 1, usage=0)
        assert code(e) == "bad_request", name
    for typ in ("image", "text/html; charset=utf-8", "a/b/c", 5):
        with pytest.raises(FileError) as e:
            ups.open("c", "alice", "f", typ, 1, usage=0)
        assert code(e) == "bad_request", typ
    for size in (0, -1, 1.5, True, "3"):
        with pytest.raises(FileError) as e:
            ups.open("c", "alice", "f", None, size, usage=0)
        assert code(e) == "bad_request", size
    up = ups.open("c", "alice", "f", "Image/PNG", 1, usage=0)
    assert up.type == "image/png"
    assert ups.open("c", "alice", "g", None, 1, usage=0).type == "application/octet-stream"
    assert os.listdir(os.path.join(blobs.root, "tmp")) != [] and len(ups) == 2


def test_bytes_past_the_declared_size_abort_the_upload(blobs):
    ups = Uploads(blobs, LIMITS)
    up = ups.open("c", "alice", "f", None, 4, usage=0)
    ups.write("c", up.handle, b"abc")
    with pytest.raises(FileError) as e:
        ups.write("c", up.handle, b"de")
    assert code(e) == "too_large"
    with pytest.raises(FileError) as e:
        ups.write("c", up.handle, b"d")
    assert code(e) == "not_found"       # gone
    assert os.listdir(os.path.join(blobs.root, "tmp")) == []


def test_finish_before_all_bytes_arrived_is_refused(blobs):
    ups = Uploads(blobs, LIMITS)
    up = ups.open("c", "alice", "f", None, 4, usage=0)
    ups.write("c", up.handle, b"abc")
    with pytest.raises(FileError) as e:
        ups.finish("c", up.handle)
    assert code(e) == "bad_request" and len(ups) == 0
    assert os.listdir(os.path.join(blobs.root, "tmp")) == []


def test_handles_belong_to_their_connection(blobs):
    ups = Uploads(blobs, LIMITS)
    up = ups.open("c1", "alice", "f", None, 4, usage=0)
    with pytest.raises(FileError) as e:
        ups.write("c2", up.handle, b"abcd")
    assert code(e) == "not_found"
    with pytest.raises(FileError):
        ups.finish("c2", up.handle)
    assert ups.get("c1", up.handle) is up


def test_uploads_in_flight_per_connection(blobs):
    ups = Uploads(blobs, LIMITS)
    a = ups.open("c1", "alice", "a", None, 1, usage=0)
    ups.open("c1", "alice", "b", None, 1, usage=0)
    with pytest.raises(FileError) as e:
        ups.open("c1", "alice", "c", None, 1, usage=0)
    assert code(e) == "rate_limited"
    ups.open("c2", "alice", "c", None, 1, usage=0)     # another connection has its own
    ups.write("c1", a.handle, b"x")
    ups.finish("c1", a.handle)
    ups.open("c1", "alice", "c", None, 1, usage=0)


def test_quota_counts_stored_bytes_and_uploads_in_flight(blobs):
    ups = Uploads(blobs, LIMITS)
    with pytest.raises(FileError) as e:
        ups.open("c1", "alice", "a", None, 600, usage=2000)
    assert code(e) == "too_large" and "quota" in e.value.msg
    a = ups.open("c1", "alice", "a", None, 1000, usage=1000)
    with pytest.raises(FileError) as e:     # in parallel, on another connection
        ups.open("c2", "alice", "b", None, 600, usage=1000)
    assert code(e) == "too_large"
    ups.open("c2", "bob", "b", None, 1000, usage=0)   # the quota is per user
    ups.abort(a)
    ups.open("c2", "alice", "b", None, 600, usage=1000)
    assert Uploads(blobs, Limits(1000, 0, 2, 1)).open("c", "alice", "a", None, 1000, usage=10**12)  # 0: none


def test_closed_connection_drops_its_uploads(blobs):
    ups = Uploads(blobs, LIMITS)
    ups.open("c1", "alice", "a", None, 10, usage=0)
    ups.open("c1", "alice", "b", None, 10, usage=0)
    keep = ups.open("c2", "alice", "c", None, 10, usage=0)
    ups.drop_owner("c1")
    assert len(ups) == 1 and ups.get("c2", keep.handle) is keep
    assert len(os.listdir(os.path.join(blobs.root, "tmp"))) == 1
    ups.open("c1", "alice", "d", None, 1000, usage=1490)   # their reservations are released (10 left)


def upload_file(ups, path, typ, owner="c"):
    data = open(path, "rb").read()
    up = ups.open(owner, "alice", os.path.basename(path), typ, len(data), usage=0)
    for i in range(0, len(data), 300):
        ups.write(owner, up.handle, data[i:i + 300])
    return ups.finish(owner, up.handle)


def test_image_is_stored_cleaned_with_its_thumbnail(blobs, tmp_path):
    ups = Uploads(blobs, Limits(10**6, 0, 4, 64_000_000))
    src = photo(str(tmp_path / "gps.jpg"), size=(800, 600))
    up = upload_file(ups, src, "image/jpeg")
    rec = complete(blobs, up, 64_000_000)
    assert (rec.type, rec.width, rec.height, rec.thumb_type) == ("image/jpeg", 800, 600, "image/jpeg")
    stored = open(blobs.path(rec.sha256), "rb").read()
    assert rec.size == len(stored) and b"secret" not in stored
    assert not Image.open(io.BytesIO(stored)).getexif()
    assert Image.open(blobs.path(rec.thumb)).size == (320, 240)
    assert os.listdir(os.path.join(blobs.root, "tmp")) == []
    ix = DictIndex()
    Catalog.add(ix, rec)
    ups.settle(up, rec)
    [r] = Catalog.attach(ix, [rec.id], "alice", "g:x")
    for sha in Catalog.detach(ix, [rec.id], "g:x"):
        assert blobs.remove(sha)
    assert list(blobs) == []


def test_declared_image_that_is_not_one_is_refused_and_nothing_kept(blobs, tmp_path):
    ups = Uploads(blobs, Limits(10**6, 0, 4, 64_000_000))
    fake = tmp_path / "cat.png"
    fake.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    up = upload_file(ups, str(fake), "image/png")
    with pytest.raises(FileError) as e:
        complete(blobs, up, 64_000_000)
    assert code(e) == "bad_request"
    bomb = upload_file(ups, png_bomb(str(tmp_path / "bomb.png")), "image/png")
    with pytest.raises(FileError) as e:
        complete(blobs, bomb, 64_000_000)
    assert code(e) == "too_large"
    assert list(blobs) == [] and os.listdir(os.path.join(blobs.root, "tmp")) == []
    # the same bytes declared as what they are, an opaque file, are fine
    up = upload_file(ups, str(fake), "image/svg+xml")
    rec = complete(blobs, up, 64_000_000)
    assert rec.type == "image/svg+xml" and rec.width is None and rec.thumb is None
