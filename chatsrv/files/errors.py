"""The one error type of chatsrv.files: a protocol error code (chatsrv.proto.errors)
and a message safe to show the client (never a path or a file's bytes). A refusal of
the domain, so that a write op of the catalog that raises it fails alone and is
answered with its code (chatsrv/domain/errors.py)."""
from ..domain.errors import Refused


class FileError(Refused):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
