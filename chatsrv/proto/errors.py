"""The error codes of protocol v1 (docs/protocol.md) and the exception that carries one to
an `err` reply. Every layer that refuses a request names its reason with these codes."""

BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"


class ProtocolError(Exception):
    """A request that gets an `err` reply; `rid` is the id it carried, if any."""

    def __init__(self, rid, code, msg):
        super().__init__(msg)
        self.rid = rid
        self.code = code
        self.msg = msg
