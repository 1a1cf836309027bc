"""Files as the server uses it, on real directories: an upload from open to record,
binary frames refused, URLs only for readers, downloads 200/403/404, unsent files
expired, the start-up sweep, and the backup of blobs."""
import io
import os

import pytest
from PIL import Image

from chatsrv.config import Config
from chatsrv.files import Catalog, FileError
from chatsrv.files.service import Files, backup

from .dictindex import DictIndex
from harness.imagekit import photo, png_bomb


def make(tmp_path, **kw):
    cfg = Config(data=str(tmp_path), max_frame_bytes=1028, max_file_bytes=1 << 20, file_quota=4 << 20, **kw)
    return Files(str(tmp_path), cfg), DictIndex()


def committer(ix):
    async def commit(op):
        return op(ix)
    return commit


def frames(handle, data, chunk):
    for i in range(0, len(data), chunk):
        yield handle.to_bytes(4, "big") + data[i:i + chunk]


async def upload(files, ix, data, name="f.bin", typ=None, owner="c1", user="alice"):
    opened = files.open(owner, user, name, typ, len(data), ix.file_usage(user))
    assert opened["chunk"] == 1024
    for fr in frames(opened["upload"], data, opened["chunk"]):
        assert files.frame(owner, memoryview(fr)) is None
    return await files.done(owner, opened["upload"], committer(ix))


async def test_upload_records_the_file_and_counts_its_bytes(tmp_path):
    files, ix = make(tmp_path)
    data = os.urandom(5000)
    pub = await upload(files, ix, data, "a.bin", "application/pdf")
    assert pub == {"id": pub["id"], "name": "a.bin", "type": "application/pdf", "size": 5000}
    rec = ix.file(pub["id"])
    assert rec.user == "alice" and ix.file_usage("alice") == 5000
    assert open(files.blobs.path(rec.sha256), "rb").read() == data
    files.close()


async def test_image_upload_is_cleaned(tmp_path):
    files, ix = make(tmp_path)
    data = open(photo(str(tmp_path / "p.jpg"), size=(640, 480)), "rb").read()
    pub = await upload(files, ix, data, "p.jpg", "image/jpeg")
    assert (pub["width"], pub["height"], pub["thumb"]) == (640, 480, True)
    stored = open(files.blobs.path(ix.file(pub["id"]).sha256), "rb").read()
    assert b"secret" not in stored and pub["size"] == len(stored)
    for bad, code in ((b"GIF89a not really", "bad_request"), (open(png_bomb(str(tmp_path / "b.png")), "rb").read(),
                                                              "too_large")):
        with pytest.raises(FileError) as e:
            await upload(files, ix, bad, "x.png", "image/png")
        assert e.value.code == code
    assert len(ix.files) == 1 and files.uploads._reserved == {}
    files.close()


async def test_bad_frames_fail_their_upload_once(tmp_path):
    files, ix = make(tmp_path)
    assert files.frame("c1", memoryview(b"\0\0"))[1].code == "bad_request"
    assert files.frame("c1", memoryview(b"\0\0\0\x09data")) is None     # no such upload: ignored
    h = files.open("c1", "alice", "f", None, 3, 0)["upload"]
    got = files.frame("c1", memoryview(h.to_bytes(4, "big") + b"abcd"))
    assert got[0] == h and got[1].code == "too_large"
    assert files.frame("c1", memoryview(h.to_bytes(4, "big") + b"a")) is None  # already failed
    with pytest.raises(FileError) as e:
        await files.done("c1", h, committer(ix))
    assert e.value.code == "not_found"
    h = files.open("c1", "alice", "f", None, 3, 0)["upload"]
    assert files.frame("c2", memoryview(h.to_bytes(4, "big") + b"abc")) is None  # not c2's
    files.cancel("c1", h)
    with pytest.raises(FileError):
        files.cancel("c1", h)
    assert os.listdir(os.path.join(files.blobs.root, "tmp")) == []
    files.close()


async def test_urls_and_downloads_follow_membership(tmp_path):
    files, ix = make(tmp_path)
    pdf = await upload(files, ix, b"%PDF-1.4 hello", "t.pdf", "application/pdf")
    img = await upload(files, ix, open(photo(str(tmp_path / "p.png"), fmt="PNG"), "rb").read(), "p.png",
                       "image/png")
    members = {"g:x": {"alice", "bob"}}

    def is_member_of(user):
        return lambda conv: user in members.get(conv, ())

    # before any message carries them, only alice may read them
    assert files.urls("bob", [pdf["id"], img["id"]], ix, is_member_of("bob"))["urls"] == {}
    Catalog.attach(ix, [pdf["id"], img["id"]], "alice", "g:x")
    got = files.urls("bob", [pdf["id"], img["id"], "nosuchfile"], ix, is_member_of("bob"))
    assert set(got["urls"]) == {pdf["id"], img["id"]} and "thumb" not in got["urls"][pdf["id"]]
    assert files.urls("carol", [pdf["id"]], ix, is_member_of("carol"))["urls"] == {}

    def get(url):
        path, query = url.split("?", 1)
        return files.download(path, query, ix, is_member_of)

    status, hdrs, body = get(got["urls"][pdf["id"]]["url"])
    assert (status, body) == (200, b"%PDF-1.4 hello")
    assert hdrs["Content-Type"] == "application/octet-stream" and hdrs["Content-Disposition"].startswith("attachment")
    status, hdrs, body = get(got["urls"][img["id"]]["thumb"])
    assert status == 200 and hdrs["Content-Type"] == "image/jpeg" and Image.open(io.BytesIO(body)).size[0] == 320
    status, hdrs, body = get(got["urls"][img["id"]]["url"])
    assert status == 200 and hdrs["Content-Type"] == "image/png" and b"secret" not in body
    # altered or expired: 403; valid but no longer a member: 404
    url = got["urls"][pdf["id"]]["url"]
    assert get(url.replace("u=bob", "u=carol"))[0] == 403
    expired, _ = files.links.url(pdf["id"], "bob", now=1000)
    assert get(expired) == (403, {}, b"forbidden")
    members["g:x"].discard("bob")
    assert get(url) == (404, {}, b"not found")
    files.close()


async def test_unsent_files_expire_and_free_their_bytes(tmp_path):
    files, ix = make(tmp_path, unsent_file_ttl=60)
    sent = await upload(files, ix, b"sent")
    unsent = await upload(files, ix, b"never sent")
    Catalog.attach(ix, [sent["id"]], "alice", "g:x")
    rec = ix.file(unsent["id"])
    await files.expire_unsent(committer(ix), now_ms=rec.ts + 59_000)
    assert ix.file(unsent["id"]) is not None
    await files.expire_unsent(committer(ix), now_ms=rec.ts + 61_000)
    assert ix.file(unsent["id"]) is None and ix.file(sent["id"]) is not None
    assert not os.path.exists(files.blobs.path(rec.sha256)) and ix.file_usage("alice") == 4
    files.close()


async def test_sweep_at_start_and_backup(tmp_path):
    src = tmp_path / "src"
    files, ix = make(src)
    kept = await upload(files, ix, b"kept")
    orphan = files.blobs.put(b"orphan: its record was never committed")
    files.blobs.unpin([orphan])
    files.uploads.open("c1", "alice", "half", None, 10, 0)
    files.close()
    again, _ = make(src)
    assert again.sweep(ix) == 1 and list(again.blobs) == [ix.file(kept["id"]).sha256]
    dest = tmp_path / "dest"
    dest.mkdir()
    assert backup(str(src), str(dest)) == 1
    copy, _ = make(dest)
    assert open(copy.blobs.path(ix.file(kept["id"]).sha256), "rb").read() == b"kept"
    assert backup(str(tmp_path / "none"), str(dest)) == 0
