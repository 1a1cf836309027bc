"""Protocol v1 (docs/protocol.md), sans-I/O: JSON text in, typed requests out; replies
and events in, bytes out. The only validator of client input (`requests`, on the
compiled rules of `check`, which the core's send fast path calls too) and the only
encoder of what the server sends (`encode`, whose `msg` splice the core cimports).
It must never touch a socket, the store or the tables of who is where: it knows the
shape of the wire, not what an op means.
"""
from .errors import (BAD_REQUEST, CONFLICT, FORBIDDEN, INTERNAL, NOT_FOUND, RATE_LIMITED, TOO_LARGE,
                     UNAUTHORIZED, UNAVAILABLE, ProtocolError)
from .encode import err, event, history_reply, message_record, msg_event, ok, send_ok
from .requests import (HISTORY_DEFAULT, HISTORY_MAX, OPS, Parser, Request, password, push_endpoint_policy,
                       user_name)

__all__ = [
    "BAD_REQUEST", "CONFLICT", "FORBIDDEN", "INTERNAL", "NOT_FOUND", "RATE_LIMITED", "TOO_LARGE", "UNAUTHORIZED",
    "UNAVAILABLE", "ProtocolError", "err", "event", "history_reply", "message_record", "msg_event", "ok", "send_ok",
    "HISTORY_DEFAULT", "HISTORY_MAX", "OPS", "Parser", "Request", "password", "push_endpoint_policy", "user_name",
]
