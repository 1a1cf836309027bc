# cython: language_level=3
"""The LMDB key layout: every key of every table is built and parsed here, and nowhere
else. Compiled, so the append of a message (inbox.pyx) builds its keys with C calls.

User, device and conversation names never contain NUL; numbers are big-endian u64, so
keys sort by number under their prefix.

  users     user                    -> {"pw": argon2 hash, "ts": ms}
  tokens    selector                -> [user, device, hex hmac(verifier)]
  devtokens user\\0device\\0selector  -> b""
  convs     conv                    -> {"kind", "members", "name", "owner", "ts"}
  members   user\\0conv              -> {"joined": first seq visible, "left": seq of leaving}
  msgs      conv\\0seq               -> message record (the `"conv":...}` tail of its JSON)
  inbox     user\\0pos               -> msgs key
  reads     user\\0conv              -> read seq
  cursors   user\\0device            -> acked inbox position
  cids      user\\0cid               -> [conv, seq, ts, sender inbox position]
  delivered user\\0conv              -> highest seq of a direct conv acked by one of user's devices
  seen      user                    -> ms the user was last online
  pushsubs  user\\0device            -> {"endpoint", "p256dh", "auth", "ts"}
  mutes     user\\0conv              -> until (ms since the epoch)
  devseen   user\\0device            -> ms the device's last connection ended
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.string cimport memcpy
from libc.stdint cimport uint64_t, uint8_t

TABLES = ("users", "tokens", "devtokens", "convs", "members", "msgs", "inbox", "reads", "cursors", "cids",
          "delivered", "seen", "pushsubs", "mutes", "devseen")
# the tables whose rows are a user's own, keyed user\0... (and seen, keyed by the name)
USER_TABLES = ("devtokens", "members", "inbox", "reads", "cursors", "cids", "delivered", "pushsubs", "mutes",
               "devseen")

# past every prefix + u64 key: the upper bound of a scan under a prefix
MAX_U64 = b"\xff" * 8


cdef inline void _put_u64be(char* p, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        p[7 - i] = <char>(v & 0xff)
        v >>= 8


cpdef bytes u64(uint64_t v):
    """v as 8 big-endian bytes (values of reads, cursors, delivered, seen, mutes)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 8)
    _put_u64be(PyBytes_AS_STRING(out), v)
    return out


cpdef uint64_t tail_u64(bytes key):
    """The big-endian number in the last 8 bytes of a key or value."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(key) + PyBytes_GET_SIZE(key) - 8
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v


cpdef bytes key_u64(bytes prefix, uint64_t v):
    """prefix + big-endian v."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(prefix)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + 8)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(prefix), n)
    _put_u64be(p + n, v)
    return out


cpdef bytes pair(str a, str b):
    """a\\0b: members, reads, delivered and mutes (user, conv); cursors and pushsubs (user, device);
    cids (user, cid)."""
    return a.encode() + b"\0" + b.encode()


cpdef bytes under(str a):
    """a\\0: the prefix of every pair key of a (a user's rows, a conversation's messages)."""
    return a.encode() + b"\0"


cpdef bytes msg(bytes conv_b, uint64_t seq):
    """conv\\0seq."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(conv_b)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + 9)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(conv_b), n)
    p[n] = 0
    _put_u64be(p + n + 1, seq)
    return out


cpdef bytes inbox(bytes user_b, uint64_t pos):
    """user\\0pos."""
    return msg(user_b, pos)


def devtoken(user, device, bytes selector):
    return pair(user, device) + b"\0" + selector


def devtokens_of(user, device):
    """The prefix of a device's token rows."""
    return pair(user, device) + b"\0"


def device_of_devtoken(bytes key, bytes user_prefix):
    """The device of a devtokens key under user\\0."""
    return key[len(user_prefix):].split(b"\0", 1)[0].decode()


def conv_of_msg(bytes mkey):
    """The conversation of a msgs key (an inbox value)."""
    return mkey[:len(mkey) - 9].decode()


def after_prefix(bytes key, bytes prefix):
    """The rest of a key found under prefix, as text (the conv of a members row, the device
    of a cursors or pushsubs row)."""
    return key[len(prefix):].decode()
