# cython: language_level=3
"""A stored message as the store returns it (`Appended`) and the write op that stores
one (`AppendMessage`), shared by every store adapter. Compiled, so the send path reads
the result's fields without Python attribute lookups. Knows no key layout."""
from libc.stdint cimport uint64_t


cdef class Appended:
    """What appending a message did: its seq and ts, each recipient's inbox position, and
    the stored record; for a duplicate cid, the first send's conv, seq, ts and inbox."""

    def __init__(self, bint dup, str conv, uint64_t seq, uint64_t ts, uint64_t inbox, bytes record=None,
                 list positions=None, list members=None):
        self.dup = dup
        self.conv = conv
        self.seq = seq
        self.ts = ts
        self.inbox = inbox
        self.record = record
        self.positions = positions
        self.members = members

    def __repr__(self):
        return f"<Appended conv={self.conv} seq={self.seq} dup={self.dup}>"


cdef class AppendMessage:
    """Write op: `user` sends `body` (with client id `cid`) to `conv`, creating the
    direct conversation `create_direct` (its two members) first when given. The
    adapter refuses (NotMember) a sender that is not a member at commit time."""

    def __init__(self, str user, str conv, body, cid, tuple create_direct=None):
        self.user = user
        self.conv = conv
        self.body = body
        self.cid = cid
        self.create_direct = create_direct

    def __call__(self, w):
        return w.append_message(self.user, self.conv, self.body, self.cid, self.create_direct, None, None)
