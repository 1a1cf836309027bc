"""A FileIndex over dicts, to test the catalog's rules apart from the store (records
are copied in and out, as a database would)."""
from chatsrv.files import FileRecord


class DictIndex:
    def __init__(self):
        self.files = {}
        self.usages = {}
        self.blob_refs = {}

    def file(self, file_id):
        raw = self.files.get(file_id)
        return FileRecord.from_bytes(raw) if raw is not None else None

    def file_usage(self, user):
        return self.usages.get(user, 0)

    def referenced_blobs(self):
        return set(self.blob_refs)

    def unsent_files(self, before_ts):
        recs = [FileRecord.from_bytes(raw) for raw in self.files.values()]
        return [r for r in recs if not r.refs and r.ts < before_ts]

    def put_file(self, rec):
        self.files[rec.id] = rec.to_bytes()

    def delete_file(self, file_id):
        del self.files[file_id]

    def add_file_usage(self, user, delta):
        self.usages[user] = self.usages.get(user, 0) + delta

    def add_blob_ref(self, sha, delta):
        n = self.blob_refs.get(sha, 0) + delta
        if n > 0:
            self.blob_refs[sha] = n
        else:
            self.blob_refs.pop(sha, None)
        return n
