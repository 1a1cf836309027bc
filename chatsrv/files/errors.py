"""The one error type of chatsrv.files: a protocol error code (chatsrv.proto.errors)
and a message safe to show the client (never a path or a file's bytes)."""


class FileError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg
