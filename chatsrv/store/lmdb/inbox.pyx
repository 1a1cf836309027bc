# cython: language_level=3
"""The per-message work of the LMDB adapter, compiled: appending a message to its
conversation and to every member's inbox inside the writer's transaction (no Python
code per recipient), and the inbox scans of replay and of `convs`/`ack`."""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME

import orjson

from chatsrv.store.message cimport Appended
from chatsrv.store.lmdb.layout cimport u64, tail_u64, key_u64, inbox, msg, pair

cdef object _dumps = orjson.dumps
cdef object _loads = orjson.loads


cdef inline uint64_t _now_ms() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <uint64_t>ts.tv_sec * 1000 + <uint64_t>(ts.tv_nsec // 1000000)


cpdef list append_inboxes(txn, inbox_db, list members, dict heads, head_of, bytes mkey):
    """Appends message key `mkey` to each member's inbox inside the write txn.

    `heads` caches each inbox's head and `head_of(txn, user)` loads one on a miss.
    Returns the new positions, in the order of `members`."""
    cdef list out = []
    cdef uint64_t h
    put = txn.put
    for m in members:
        cached = heads.get(m)
        h = (head_of(txn, m) if cached is None else cached) + 1
        heads[m] = h
        put(inbox((<str>m).encode(), h), mkey, db=inbox_db)
        out.append(h)
    return out


cdef class Appender:
    """Stores a message inside the writer's transaction (runs in the writer thread).

    The caches are the adapter's (conv -> last seq, user -> inbox head, conv ->
    members): derived from the store, cleared whenever a write transaction aborts.
    `misses` loads an entry on a cache miss, `record` encodes a message (the wire's
    format, kept opaque here) and `refused` makes the refusal of a non-member."""

    cdef public dict heads
    cdef public dict seqs
    cdef public dict members
    cdef object misses
    cdef object msgs_db, inbox_db, reads_db, cids_db
    cdef object record
    cdef object refused

    def __init__(self, misses, dbs, record, refused):
        self.heads = {}
        self.seqs = {}
        self.members = {}
        self.misses = misses
        self.msgs_db = dbs["msgs"]
        self.inbox_db = dbs["inbox"]
        self.reads_db = dbs["reads"]
        self.cids_db = dbs["cids"]
        self.record = record
        self.refused = refused

    def forget(self):
        self.heads.clear()
        self.seqs.clear()
        self.members.clear()

    cpdef Appended append(self, txn, str user, str conv, body, cid, tuple create_direct, sys, list members):
        """Stores a message and appends it to every member's inbox.

        The sender must be a member (checked here, against the store, so a send that
        raced a removal is refused); `members` overrides the recipients (system
        messages of group changes). A cid seen before gives the first send's result
        with dup=True and stores nothing. Sending marks the conversation read."""
        cdef bytes conv_b = conv.encode()
        cdef bytes ck = None, mkey, record
        cdef uint64_t seq, ts, mine = 0
        cdef list positions
        get = txn.get
        put = txn.put
        if cid is not None:
            ck = pair(user, <str>cid)
            prev = get(ck, None, self.cids_db)
            if prev is not None:
                c2, s2, t2, m2 = _loads(prev)
                return Appended(True, c2, s2, t2, m2)
        if members is None:
            if create_direct is not None:
                self.misses.create_direct(txn, conv, create_direct)
            members = self.members.get(conv)
            if members is None:
                members = self.misses.members_of(txn, conv)
            if members is None or user not in members:
                raise self.refused()
        last = self.seqs.get(conv)
        seq = (self.misses.last_seq(txn, conv) if last is None else last) + 1
        ts = _now_ms()
        record = self.record(conv, seq, user, ts, body, cid, sys)
        mkey = msg(conv_b, seq)
        put(mkey, record, True, True, False, self.msgs_db)
        self.seqs[conv] = seq
        positions = append_inboxes(txn, self.inbox_db, members, self.heads, self.misses.head_of, mkey)
        if user in members:
            put(pair(user, conv), u64(seq), True, True, False, self.reads_db)
            mine = positions[members.index(user)]
        if ck is not None:
            put(ck, _dumps([conv, seq, ts, mine]), True, True, False, self.cids_db)
        return Appended(False, conv, seq, ts, mine, record, positions, members)


cpdef tuple read_after(txn, inbox_db, msgs_db, bytes user_prefix, uint64_t after, Py_ssize_t max_n):
    """Up to max_n inbox entries after position `after`: (positions, records), the
    records being the stored `"conv":...}` tails (the backlog of a device)."""
    cdef list positions = [], records = []
    cdef Py_ssize_t plen = PyBytes_GET_SIZE(user_prefix)
    cdef bytes k
    cur = txn.cursor(db=inbox_db)
    get = txn.get
    if not cur.set_range(key_u64(user_prefix, after + 1)):
        return positions, records
    while len(positions) < max_n:
        k = cur.key()
        if PyBytes_GET_SIZE(k) != plen + 8 or k[:plen] != user_prefix:
            break
        positions.append(tail_u64(k))
        records.append(get(cur.value(), db=msgs_db))
        if not cur.next():
            break
    return positions, records


cpdef dict span(txn, inbox_db, bytes user_prefix, uint64_t after, uint64_t upto, bytes only_prefix):
    """{conv: (seq, pos)} of the newest entry of each conversation among inbox positions
    (after, upto], only of conversations whose id starts with only_prefix when given.
    In an inbox a conversation's messages are in seq order, so the last entry seen
    holds both its highest seq and its highest position."""
    cdef dict out = {}
    cdef Py_ssize_t plen = PyBytes_GET_SIZE(user_prefix)
    cdef bytes k, v
    cdef uint64_t pos
    cur = txn.cursor(db=inbox_db)
    if not cur.set_range(key_u64(user_prefix, after + 1)):
        return out
    while True:
        k = cur.key()
        if PyBytes_GET_SIZE(k) != plen + 8 or k[:plen] != user_prefix:
            break
        pos = tail_u64(k)
        if pos > upto:
            break
        v = cur.value()
        if only_prefix is None or v.startswith(only_prefix):
            out[PyUnicode_DecodeUTF8(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v) - 9, NULL)] = (tail_u64(v), pos)
        if not cur.next():
            break
    return out
