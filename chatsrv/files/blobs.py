"""Attachment bytes on disk, content-addressed: `ROOT/ab/cdef...` is the file whose
sha256 is `abcdef...`. A blob appears under its name only once its bytes and the
directory entry are synced, so a name that exists is a file that survives a crash.

Owns the layout of ROOT and nothing else: never decides whether a blob is still
needed (the catalog counts references) and never interprets the bytes.
"""
import hashlib
import os
import re
import secrets
import threading

TMP = "tmp"
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class TooLarge(Exception):
    """More bytes than the writer was opened for."""


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """One blob being written: a temporary file, hashed as it grows. Not yet a blob
    until Blobs.commit; abort() (or a crash: Blobs.sweep) leaves nothing behind."""

    __slots__ = ("path", "limit", "size", "_hash", "_f")

    def __init__(self, path, limit):
        self.path = path
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._f = os.fdopen(fd, "wb")

    def write(self, data):
        """Appends data; raises TooLarge (and keeps nothing new) past the limit."""
        if self.size + len(data) > self.limit:
            raise TooLarge(f"more than {self.limit} bytes")
        self._f.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def sha256(self):
        return self._hash.hexdigest()

    def close(self, sync):
        if self._f.closed:
            return
        self._f.flush()
        if sync:
            os.fsync(self._f.fileno())
        self._f.close()

    def abort(self):
        self.close(sync=False)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class Blobs:
    """The blob directory. commit/put/remove do blocking file-system work: call them
    off the event loop.

    A blob just committed is pinned until unpin(): its record is not committed yet,
    so the catalog may still count no reference to the same content and ask for its
    removal (a deleted message's file uploaded again meanwhile). remove() skips a
    pinned blob; one removed before the commit is simply written again by it."""

    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, TMP), mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._pins = {}   # sha256 -> commits awaiting their record

    def path(self, sha):
        if not SHA_RE.match(sha):
            raise ValueError("not a sha256 hex digest")
        return os.path.join(self.root, sha[:2], sha[2:])

    def exists(self, sha):
        return os.path.isfile(self.path(sha))

    def writer(self, limit):
        """A new BlobWriter in ROOT/tmp that refuses more than limit bytes."""
        return BlobWriter(os.path.join(self.root, TMP, secrets.token_hex(16)), limit)

    def commit(self, w):
        """Makes w's bytes the blob named by their sha256, durably: the data is synced,
        then renamed into place, then the directory is synced. Returns the sha256.
        Content already stored is kept as it is and w's copy dropped."""
        w.close(sync=True)
        sha = w.sha256
        dest = self.path(sha)
        with self._lock:
            self._pins[sha] = self._pins.get(sha, 0) + 1
            if os.path.isfile(dest):
                os.unlink(w.path)
                return sha
            shard = os.path.dirname(dest)
            if not os.path.isdir(shard):
                os.makedirs(shard, mode=0o700, exist_ok=True)
                _fsync_dir(self.root)
            os.replace(w.path, dest)
            _fsync_dir(shard)
        return sha

    def unpin(self, shas):
        """The records naming these blobs are committed (or were never made)."""
        with self._lock:
            for sha in shas:
                n = self._pins.get(sha, 0) - 1
                if n > 0:
                    self._pins[sha] = n
                else:
                    self._pins.pop(sha, None)

    def put(self, data):
        """Stores bytes held in memory (a re-encoded image, a thumbnail) as a blob."""
        w = self.writer(len(data))
        try:
            w.write(data)
            return self.commit(w)
        except BaseException:
            w.abort()
            raise

    def remove(self, sha):
        """Unlinks a blob nothing references any more. Not synced: should the unlink
        be lost in a crash, sweep() removes the orphan at the next start. Returns
        False for a pinned blob, which stays."""
        path = self.path(sha)
        with self._lock:
            if sha in self._pins:
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return True

    def __iter__(self):
        """The sha256 of every stored blob."""
        for shard in sorted(os.listdir(self.root)):
            if len(shard) != 2:
                continue
            for rest in sorted(os.listdir(os.path.join(self.root, shard))):
                if SHA_RE.match(shard + rest):
                    yield shard + rest

    def sweep(self, referenced):
        """At start, before any upload: drops unfinished uploads and every blob whose
        sha256 is not in referenced. Returns how many blobs were removed."""
        tmp = os.path.join(self.root, TMP)
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        removed = 0
        for sha in list(self):
            if sha not in referenced:
                self.remove(sha)
                removed += 1
        return removed
