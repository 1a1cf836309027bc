"""`Files`: the attachments of one server, as the connection and the domain use them:
uploads opened, fed by binary frames and completed; signed URLs issued; downloads
answered; unsent files expired; the blob directory swept at start.

The store is reached only through `commit(op)`, an awaitable that runs op(index) in
the writer's transaction on a FileIndex and gives its result after the commit, and
through a FileIndex for reads: this module never sees a key or a socket. Blocking
work (syncing, image decoding, removal) runs in one worker thread, never on the loop.
"""
import asyncio
import concurrent.futures
import logging
import os
import time

from ..proto.errors import BAD_REQUEST, NOT_FOUND, TOO_LARGE, UNAVAILABLE
from . import blob_root
from .blobs import Blobs
from .catalog import Catalog
from .errors import FileError
from .http import headers
from .links import Links, load_key
from .uploads import Limits, Uploads, complete

log = logging.getLogger("chatsrv.files")
HEADER = 4          # a binary frame starts with the upload's handle, 4 bytes big-endian
MAX_URLS = 200


class Files:
    def __init__(self, data_dir, cfg):
        self.blobs = Blobs(blob_root(data_dir))
        self.limits = Limits.from_config(cfg)
        self.uploads = Uploads(self.blobs, self.limits)
        self.links = Links(load_key(data_dir), cfg.file_url_ttl)
        self.chunk = cfg.max_frame_bytes - HEADER
        self.unsent_ttl = cfg.unsent_file_ttl
        self.max_attachments = cfg.max_attachments
        # one thread: images are decoded one at a time, which bounds their memory
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chatsrv-files")

    def close(self):
        self.pool.shutdown(wait=True)

    # --- uploads

    def open(self, owner, user, name, typ, size, usage):
        """upload_open: usage is the user's stored bytes (FileIndex.file_usage)."""
        up = self.uploads.open(owner, user, name, typ, size, usage)
        return {"upload": up.handle, "chunk": self.chunk}

    def frame(self, owner, payload):
        """One binary frame. None when taken; (handle, FileError) when the frame was
        refused and the upload (if any) dropped: the upload_failed event to send.
        Frames of an upload already failed are ignored (None)."""
        if len(payload) < HEADER:
            return 0, FileError(BAD_REQUEST, "a binary frame starts with a 4-byte upload handle")
        handle = int.from_bytes(payload[:HEADER], "big")
        if self.uploads.get(owner, handle) is None:
            return None     # failed or cancelled before: the client has been told once
        try:
            self.uploads.write(owner, handle, payload[HEADER:])
        except FileError as e:
            return handle, e
        return None

    def cancel(self, owner, handle):
        up = self.uploads.get(owner, handle)
        if up is None:
            raise FileError(NOT_FOUND, f"no upload {handle} open on this connection")
        self.uploads.abort(up)

    def drop(self, owner):
        """The connection closed."""
        self.uploads.drop_owner(owner)

    async def done(self, owner, handle, commit):
        """upload_done: the file durable, then its record committed; its public fields."""
        up = self.uploads.finish(owner, handle)
        loop = asyncio.get_running_loop()
        rec = None
        try:
            rec = await loop.run_in_executor(self.pool, complete, self.blobs, up, self.limits.max_image_pixels)
            await commit(lambda ix: Catalog.add(ix, rec))
        except FileError:
            raise
        except Exception:
            log.exception("upload of %d bytes failed", up.size)
            raise FileError(UNAVAILABLE, "the file could not be stored") from None
        finally:
            self.uploads.settle(up, rec)
        return rec.public()

    # --- references from messages

    def check_ids(self, ids):
        """The attachments argument of send, as a list of distinct ids."""
        if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
            raise FileError(BAD_REQUEST, "attachments must be a list of file ids")
        if len(ids) > self.max_attachments:
            raise FileError(TOO_LARGE, f"a message may carry at most {self.max_attachments} files")
        return list(dict.fromkeys(ids))

    async def remove(self, shas):
        """After the commit that dropped their last reference: unlink the blobs."""
        if shas:
            await asyncio.get_running_loop().run_in_executor(self.pool, self._remove, shas)

    def _remove(self, shas):
        for sha in shas:
            self.blobs.remove(sha)

    async def expire_unsent(self, commit, now_ms=None):
        """Forgets the files no message carries, uploaded longer than the TTL ago."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        before = now_ms - int(self.unsent_ttl * 1000)

        def op(ix):
            freed = []
            for rec in ix.unsent_files(before):
                freed += Catalog.forget(ix, rec)
            return freed

        await self.remove(await commit(op))

    def sweep(self, index):
        """At start, before serving: blobs no record names, and unfinished uploads, go."""
        n = self.blobs.sweep(index.referenced_blobs())
        if n:
            log.info("removed %d unreferenced files", n)
        return n

    # --- downloads

    def urls(self, user, ids, index, is_member):
        """file_urls: signed URLs for the files among ids that user may read."""
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > MAX_URLS:
            raise FileError(BAD_REQUEST, f"ids must be a list of at most {MAX_URLS} file ids")
        out, expires = {}, None
        for fid in dict.fromkeys(ids):
            rec = index.file(fid) if 0 < len(fid) <= 64 else None
            if rec is None or not rec.may_read(user, is_member):
                continue
            url, expires = self.links.url(fid, user)
            entry = {"url": url}
            if rec.thumb is not None:
                entry["thumb"] = self.links.url(fid, user, thumb=True)[0]
            out[fid] = entry
        if expires is None:
            expires = int(time.time()) + int(self.links.ttl)
        return {"urls": out, "expires": expires}

    def download(self, path, query, index, is_member_of):
        """GET /files/...: (status, headers, body). 403 for a URL that is not (or no longer)
        valid, 404 for a file that is gone or that its user may no longer read; neither
        says more. is_member_of(user) gives the membership test for that user."""
        got = self.links.verify(path, query)
        if got is None:
            return 403, {}, b"forbidden"
        file_id, thumb, user = got
        rec = index.file(file_id)
        if rec is None or not rec.may_read(user, is_member_of(user)) or (thumb and rec.thumb is None):
            return 404, {}, b"not found"
        try:
            with open(self.blobs.path(rec.thumb if thumb else rec.sha256), "rb") as f:
                body = f.read()
        except FileNotFoundError:
            return 404, {}, b"not found"
        return 200, headers(rec, thumb), body


def backup(data_dir, dest):
    """Copies every blob of data_dir into the data directory dest, each synced; returns
    how many. Run after the database snapshot (which copies the signing key with the
    other key files): blobs never change, so each copy is exact, and every blob the
    snapshot names is there unless its last reference was dropped after the snapshot."""
    src = blob_root(data_dir)
    if not os.path.isdir(src):
        return 0
    blobs, out = Blobs(src), Blobs(blob_root(dest))
    n = 0
    for sha in list(blobs):
        try:
            with open(blobs.path(sha), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue        # removed since it was listed
        if out.put(data) != sha:
            raise OSError(f"file {sha[:12]}... in {src} does not match its name: the disk corrupted it")
        n += 1
    return n
