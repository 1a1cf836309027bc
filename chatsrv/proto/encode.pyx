# cython: language_level=3
"""Every byte the server sends a client, encoded once: replies (ok, err), events, the
stored message record and the `msg` event spliced from it, history replies. Pure
functions; the router and the replay cimport the `msg` splice (encode.pxd) so no event
is built in Python per recipient. Nothing here writes to a socket or reads the store."""
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

import orjson

cdef object _dumps = orjson.dumps

# the constant start of a `msg` event, in front of its inbox digits (encode.pxd writes it)
MSG_PREFIX = b'{"ev":"msg","inbox":'
assert len(MSG_PREFIX) == MSG_PREFIX_LEN


def ok(rid, result):
    return _dumps({"id": rid, "ok": result})


def err(rid, code, msg):
    return _dumps({"id": rid, "err": {"code": code, "msg": msg}})


def event(name, **fields):
    return _dumps({"ev": name, **fields})


cpdef bytes send_ok(object rid, str conv, uint64_t seq, uint64_t ts, uint64_t inbox):
    """The reply to a stored (or deduplicated) `send`."""
    return _dumps({"id": rid, "ok": {"conv": conv, "seq": seq, "ts": ts, "inbox": inbox}})


# A stored message is kept as the tail of its JSON object, `"conv":...}`, so that a `msg`
# event is MSG_PREFIX + inbox digits + b"," + record and a history item is b"{" + record:
# no decode or encode per message on replay or fan-out.

def message_record(conv, seq, sender, ts, body=None, cid=None, sys=None):
    m = {"conv": conv, "seq": seq, "from": sender, "ts": ts}
    if sys is not None:
        m["sys"] = sys
    else:
        m["body"] = body
    if cid is not None:
        m["cid"] = cid
    return _dumps(m)[1:]


cdef char* msg_layout(bytearray buf, bytes record) except NULL:
    """Sizes buf for one record's events and puts `,record` after the inbox digits' slot;
    returns the buffer's start (valid until buf is resized)."""
    cdef Py_ssize_t rlen = PyBytes_GET_SIZE(record)
    cdef char* p
    PyByteArray_Resize(buf, MSG_INBOX_END + 1 + rlen)
    p = PyByteArray_AS_STRING(buf)
    p[MSG_INBOX_END] = b','
    memcpy(p + MSG_INBOX_END + 1, PyBytes_AS_STRING(record), rlen)
    return p


def msg_event(uint64_t inbox, bytes record):
    """The `msg` event of record at the recipient's inbox position (the splice the router
    makes per recipient, as one bytes object)."""
    cdef bytearray buf = bytearray()
    cdef char* p = msg_layout(buf, record)
    cdef Py_ssize_t start = msg_inbox(p, inbox)
    return PyBytes_FromStringAndSize(p + start, MSG_INBOX_END + 1 + PyBytes_GET_SIZE(record) - start)


def history_reply(rid, records):
    return b'{"id":' + _dumps(rid) + b',"ok":{"messages":[' + b",".join(
        [b"{" + r for r in records]) + b"]}}"
