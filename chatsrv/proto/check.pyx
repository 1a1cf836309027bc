# cython: language_level=3
"""The field rules of protocol v1, compiled: what a user name, an id, a body, a cid and a
conversation id may be, and which frames are a well-formed `send`. The parser's
validators and the core's send fast path both call these; nothing else decides them.
Pure functions: no state, no I/O."""


cpdef bint is_user_name(object v):
    """^[a-z0-9_]{3,32}$"""
    cdef str s
    cdef Py_UCS4 ch
    if type(v) is not str:
        return False
    s = <str>v
    if not USER_MIN <= len(s) <= USER_MAX:
        return False
    for ch in s:
        if not (ch == u'_' or u'a' <= ch <= u'z' or u'0' <= ch <= u'9'):
            return False
    return True


cpdef bint is_text(object v, Py_ssize_t lo, Py_ssize_t hi):
    """A string of lo to hi characters."""
    return type(v) is str and lo <= len(<str>v) <= hi


cpdef bint is_rid(object v):
    """A request id: absent (None), an integer or a string."""
    return v is None or type(v) is int or type(v) is str


cpdef bint is_body(object v):
    """A non-empty string (its size in bytes is body_fits')."""
    return type(v) is str and len(<str>v) > 0


cpdef bint body_fits(object v, Py_ssize_t max_bytes):
    """A message body of at most max_bytes in UTF-8."""
    cdef Py_ssize_t n
    if not is_body(v):
        return False
    n = len(<str>v)
    # UTF-8 is at most 4 bytes per character, so most bodies skip the encode
    return n * 4 <= max_bytes or len((<str>v).encode()) <= max_bytes


cpdef int send_kind(dict d, Py_ssize_t max_body) except -1:
    """SEND_CONV or SEND_TO when d is a well-formed `send` (the parser would accept it),
    else SEND_NOT."""
    if d.get("op") != "send" or not is_rid(d.get("id")):
        return SEND_NOT
    if not is_text(d.get("cid"), 1, CID_MAX) or not body_fits(d.get("body"), max_body):
        return SEND_NOT
    to = d.get("to")
    conv = d.get("conv")
    if to is not None:
        return SEND_TO if conv is None and is_user_name(to) else SEND_NOT
    return SEND_CONV if is_text(conv, 1, CONV_MAX) else SEND_NOT
