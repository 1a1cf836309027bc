"""What is known about each attachment, and the reference counting that decides
when its bytes may go: `FileRecord` (one uploaded file), `FileIndex` (what the store
implements to persist records: the key layout is the store's) and `Catalog` (every
change of records and references, applied to an index inside one transaction).

A record is created, unreferenced, when its upload completes; each message that
carries it adds a reference in the message's conversation; deleting such a message
drops one. A blob (chatsrv.files.blobs) is removed only after the commit that drops
its last record, so a crash in between leaves an orphan for Blobs.sweep, never a
record without its bytes. Never touches the disk itself.
"""
import dataclasses
from typing import Protocol

import orjson

from ..proto.errors import NOT_FOUND
from .errors import FileError


@dataclasses.dataclass(slots=True)
class FileRecord:
    id: str                 # random, not the sha256: equal content must not be detectable by id
    user: str               # the uploader
    name: str               # the client's file name, shown and offered on download
    type: str               # declared type; for an image, the type verified by decoding
    size: int               # bytes served (an image: after re-encoding)
    sha256: str             # the blob
    ts: int                 # upload time, ms since the epoch
    width: int | None = None
    height: int | None = None
    thumb: str | None = None        # sha256 of the thumbnail blob
    thumb_type: str | None = None
    refs: dict[str, int] = dataclasses.field(default_factory=dict)  # conv -> messages carrying it

    @property
    def image(self):
        return self.width is not None

    def public(self):
        """The attachment as messages carry it."""
        out = {"id": self.id, "name": self.name, "type": self.type, "size": self.size}
        if self.image:
            out["width"] = self.width
            out["height"] = self.height
        if self.thumb is not None:
            out["thumb"] = True
        return out

    def blobs(self):
        return [s for s in (self.sha256, self.thumb) if s is not None]

    def may_read(self, user, is_member):
        """The uploader, or a member of a conversation in which a message carries it."""
        return user == self.user or any(n > 0 and is_member(conv) for conv, n in self.refs.items())

    def to_bytes(self):
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_bytes(cls, raw):
        return cls(**orjson.loads(raw))


class FileIndex(Protocol):
    """Persistence of records, one transaction's view: the store's Reader (the reads)
    and WriteTxn (all of it) implement it, with names that stand out among theirs."""

    def file(self, file_id: str) -> FileRecord | None: ...
    def file_usage(self, user: str) -> int: ...             # bytes of the user's records
    def referenced_blobs(self) -> set[str]: ...             # every sha256 with a count above 0
    def unsent_files(self, before_ts: int) -> list[FileRecord]: ...  # no refs, uploaded before
    def put_file(self, rec: FileRecord) -> None: ...
    def delete_file(self, file_id: str) -> None: ...
    def add_file_usage(self, user: str, delta: int) -> None: ...
    def add_blob_ref(self, sha256: str, delta: int) -> int: ...   # the new count


class Catalog:
    """The transitions of records and references, on any FileIndex. Each method is
    one step of a transaction; those that free bytes return the sha256 of blobs to
    remove after that transaction commits."""

    @staticmethod
    def add(index: FileIndex, rec: FileRecord):
        """A completed upload: its record, its user's usage and its blobs' counts."""
        index.put_file(rec)
        index.add_file_usage(rec.user, rec.size)
        for sha in rec.blobs():
            index.add_blob_ref(sha, 1)

    @staticmethod
    def attach(index: FileIndex, file_ids, user, conv):
        """References each file from one new message of user's in conv and returns the
        records. Only the uploader may attach a file; an unknown id or someone else's
        file is refused alike (FileError not_found), and then nothing is changed."""
        recs = []
        for fid in file_ids:
            rec = index.file(fid)
            if rec is None or rec.user != user:
                raise FileError(NOT_FOUND, f"no file {fid} of yours")
            recs.append(rec)
        for rec in recs:
            rec.refs[conv] = rec.refs.get(conv, 0) + 1
            index.put_file(rec)
        return recs

    @staticmethod
    def detach(index: FileIndex, file_ids, conv):
        """A message in conv that carried file_ids is gone: one reference fewer each.
        A file no message references any more is forgotten."""
        freed = []
        for fid in file_ids:
            rec = index.file(fid)
            if rec is None or rec.refs.get(conv, 0) <= 0:
                continue
            rec.refs[conv] -= 1
            if rec.refs[conv] == 0:
                del rec.refs[conv]
            if rec.refs:
                index.put_file(rec)
            else:
                freed += Catalog.forget(index, rec)
        return freed

    @staticmethod
    def forget(index: FileIndex, rec: FileRecord):
        """Removes a record (a file no message carries, or an upload never sent) and
        returns the blobs it held last."""
        index.delete_file(rec.id)
        index.add_file_usage(rec.user, -rec.size)
        return [sha for sha in rec.blobs() if index.add_blob_ref(sha, -1) <= 0]
