"""Uploads in flight: opened by an op, fed by binary frames, completed by an op
(docs/protocol.md §13). `Uploads` enforces the limits when an upload opens and as
its bytes arrive, on the event loop (cheap: a write to the page cache and a hash
update per frame); `complete` does the blocking part in a worker thread: sync the
bytes, verify and clean an image, store the blobs, and make the FileRecord.

Never commits a record (the caller does, through the store, after complete) and
never lets an upload's bytes exceed what was declared when it opened.
"""
import base64
import dataclasses
import re
import secrets
import time

from ..proto.errors import BAD_REQUEST, NOT_FOUND, RATE_LIMITED, TOO_LARGE, UNAVAILABLE
from . import images
from .blobs import Blobs, TooLarge
from .catalog import FileRecord
from .errors import FileError

NAME_MAX = 255
TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
OPAQUE = "application/octet-stream"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_file_bytes: int      # one file
    quota: int               # bytes of files a user may keep stored (0: no limit)
    max_uploads: int         # uploads in flight per connection
    max_image_pixels: int    # width x height x frames of an image

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.max_file_bytes, cfg.file_quota, cfg.max_uploads, cfg.max_image_pixels)


def new_file_id():
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def check_name(name):
    """A file name as a client may give it: shown to others and offered on download."""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX:
        raise FileError(BAD_REQUEST, f"name must be a string of 1 to {NAME_MAX} characters")
    if any(c in name for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in name) or name in (".", ".."):
        raise FileError(BAD_REQUEST, "name must not contain a slash, a backslash or control characters")
    return name


def check_type(typ):
    """A media type without parameters, compared in lower case; absent: opaque."""
    if typ is None:
        return OPAQUE
    if not isinstance(typ, str) or not TYPE_RE.match(typ.lower()):
        raise FileError(BAD_REQUEST, "type must be a media type such as image/png")
    return typ.lower()


class Upload:
    """One upload of one connection, between its open and its completion."""

    __slots__ = ("handle", "owner", "user", "name", "type", "size", "writer")

    def __init__(self, handle, owner, user, name, typ, size, writer):
        self.handle = handle
        self.owner = owner
        self.user = user
        self.name = name
        self.type = typ
        self.size = size          # declared: exactly this many bytes must arrive
        self.writer = writer

    @property
    def received(self):
        return self.writer.size


class Uploads:
    """Every upload in flight, by (owner, handle); owner is the connection. The bytes
    declared by a user's uploads in flight count against the user's quota until
    settle(), so uploads in parallel cannot overshoot it."""

    def __init__(self, blobs: Blobs, limits: Limits):
        self.blobs = blobs
        self.limits = limits
        self._open = {}        # (owner, handle) -> Upload
        self._per_owner = {}   # owner -> count in flight
        self._reserved = {}    # user -> bytes declared in flight
        self._next = 0

    def open(self, owner, user, name, typ, size, usage):
        """Starts an upload of size bytes; usage is the user's stored bytes now. Returns
        the Upload; its handle is what the client puts in front of each binary frame."""
        lim = self.limits
        name = check_name(name)
        typ = check_type(typ)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise FileError(BAD_REQUEST, "size must be a positive integer")
        if size > lim.max_file_bytes:
            raise FileError(TOO_LARGE, f"a file may have at most {lim.max_file_bytes} bytes")
        if lim.quota and usage + self._reserved.get(user, 0) + size > lim.quota:
            raise FileError(TOO_LARGE, f"storage quota of {lim.quota} bytes exceeded")
        if self._per_owner.get(owner, 0) >= lim.max_uploads:
            raise FileError(RATE_LIMITED, f"at most {lim.max_uploads} uploads in flight per connection")
        self._next = (self._next + 1) & 0xFFFFFFFF or 1
        up = Upload(self._next, owner, user, name, typ, size, self.blobs.writer(size))
        self._open[(owner, up.handle)] = up
        self._per_owner[owner] = self._per_owner.get(owner, 0) + 1
        self._reserved[user] = self._reserved.get(user, 0) + size
        return up

    def get(self, owner, handle):
        return self._open.get((owner, handle))

    def write(self, owner, handle, data):
        """Appends one binary frame's bytes. Past the declared size the upload is
        aborted (FileError too_large); an unknown handle is FileError not_found."""
        up = self._open.get((owner, handle))
        if up is None:
            raise FileError(NOT_FOUND, f"no upload {handle} open on this connection")
        try:
            up.writer.write(data)
        except TooLarge:
            self.abort(up)
            raise FileError(TOO_LARGE, f"more bytes than the {up.size} declared") from None
        except OSError:
            self.abort(up)
            raise FileError(UNAVAILABLE, "the upload could not be stored") from None
        return up

    def finish(self, owner, handle):
        """Takes a fully received upload out of flight, to be completed; its bytes stay
        reserved until settle()."""
        up = self._open.get((owner, handle))
        if up is None:
            raise FileError(NOT_FOUND, f"no upload {handle} open on this connection")
        if up.received != up.size:
            self.abort(up)
            raise FileError(BAD_REQUEST, f"received {up.received} of {up.size} bytes")
        self._close(up)
        return up

    def settle(self, up, rec=None):
        """The upload's record rec is committed (or it failed: no rec): stop reserving
        its bytes and pinning its blobs."""
        if rec is not None:
            self.blobs.unpin(rec.blobs())
        left = self._reserved.get(up.user, 0) - up.size
        if left > 0:
            self._reserved[up.user] = left
        else:
            self._reserved.pop(up.user, None)

    def abort(self, up):
        if self._open.get((up.owner, up.handle)) is up:
            self._close(up)
            self.settle(up)
        up.writer.abort()

    def drop_owner(self, owner):
        """The connection closed: its unfinished uploads are discarded."""
        for key in [k for k in self._open if k[0] == owner]:
            self.abort(self._open[key])

    def _close(self, up):
        del self._open[(up.owner, up.handle)]
        n = self._per_owner[up.owner] - 1
        if n:
            self._per_owner[up.owner] = n
        else:
            del self._per_owner[up.owner]

    def __len__(self):
        return len(self._open)


def complete(blobs: Blobs, up: Upload, max_pixels, now_ms=None):
    """Blocking: makes the received bytes durable and returns the FileRecord (not yet
    committed), its blobs pinned until Uploads.settle. A declared image must decode as that type: refused otherwise
    (FileError bad_request) or when it has too many pixels (too_large). The upload's
    temporary file is gone afterwards, whatever the outcome."""
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    w = up.writer
    try:
        if up.type not in images.TYPES:
            sha = blobs.commit(w)
            return FileRecord(new_file_id(), up.user, up.name, up.type, up.size, sha, ts)
        w.close(sync=False)
        try:
            img = images.prepare(w.path, up.type, max_pixels)
        except images.NotAnImage:
            raise FileError(BAD_REQUEST, f"not a valid {up.type} image") from None
        except images.TooManyPixels:
            raise FileError(TOO_LARGE, f"an image may have at most {max_pixels} pixels") from None
        sha = blobs.put(img.data)
        try:
            thumb = blobs.put(img.thumb)
        except BaseException:
            blobs.unpin([sha])
            raise
        return FileRecord(new_file_id(), up.user, up.name, img.type, len(img.data), sha, ts,
                          img.width, img.height, thumb, img.thumb_type)
    finally:
        w.abort()   # no-op once committed: the temporary name is gone
