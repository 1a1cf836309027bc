# The encoder of `msg` events as C, for the router's fan-out and the backlog replay: a
# stored record is the `"conv":...}` tail of the event's JSON, so an event is the
# constant prefix, the recipient's inbox digits, a comma and the record. The buffer is
# laid out once per record; per recipient only prefix and digits are rewritten before it.
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef enum:
    MSG_PREFIX_LEN = 20     # len('{"ev":"msg","inbox":')
    MSG_INBOX_END = 40      # prefix + 20 digits (the widest u64): where the inbox digits end


cdef char* msg_layout(bytearray buf, bytes record) except NULL


cdef inline Py_ssize_t msg_inbox(char* p, uint64_t inbox) noexcept nogil:
    """Writes the prefix and `inbox` in decimal to end at MSG_INBOX_END in a buffer laid out
    by msg_layout; returns where the event starts. The event is p[start : MSG_INBOX_END + 1
    + len(record)]."""
    cdef const char* prefix = b'{"ev":"msg","inbox":'
    cdef Py_ssize_t n = 0
    while True:
        n += 1
        p[MSG_INBOX_END - n] = <char>(48 + inbox % 10)
        inbox //= 10
        if inbox == 0:
            break
    memcpy(p + MSG_INBOX_END - n - MSG_PREFIX_LEN, prefix, MSG_PREFIX_LEN)
    return MSG_INBOX_END - n - MSG_PREFIX_LEN


cpdef bytes send_ok(object rid, str conv, uint64_t seq, uint64_t ts, uint64_t inbox)
