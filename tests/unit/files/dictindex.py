"""A FileIndex over dicts, to test the catalog's rules before the store implements
the interface (records are copied in and out, as a database would)."""
from chatsrv.files import FileRecord


class DictIndex:
    def __init__(self):
        self.files = {}
        self.usages = {}
        self.blob_refs = {}

    def get(self, file_id):
        raw = self.files.get(file_id)
        return FileRecord.from_bytes(raw) if raw is not None else None

    def put(self, rec):
        self.files[rec.id] = rec.to_bytes()

    def delete(self, file_id):
        del self.files[file_id]

    def usage(self, user):
        return self.usages.get(user, 0)

    def add_usage(self, user, delta):
        self.usages[user] = self.usages.get(user, 0) + delta

    def add_blob_ref(self, sha, delta):
        n = self.blob_refs.get(sha, 0) + delta
        if n > 0:
            self.blob_refs[sha] = n
        else:
            self.blob_refs.pop(sha, None)
        return n
