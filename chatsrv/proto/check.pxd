# The field rules of protocol v1 as C functions. The request parser (requests.py) builds
# its validators on them and the core's send fast path calls send_kind, so each rule is
# written once and both entrances into `send` accept exactly the same requests.

cpdef enum:
    USER_MIN = 3
    USER_MAX = 32
    CID_MAX = 64
    CONV_MAX = 100

cpdef enum:
    SEND_NOT = 0      # not a well-formed send: the parser gives the exact answer
    SEND_CONV = 1     # a send to d["conv"]
    SEND_TO = 2       # a send to the user d["to"] (their direct conversation)

cpdef bint is_user_name(object v)
cpdef bint is_text(object v, Py_ssize_t lo, Py_ssize_t hi)
cpdef bint is_rid(object v)
cpdef bint is_body(object v)
cpdef bint body_fits(object v, Py_ssize_t max_bytes)
cpdef int send_kind(dict d, Py_ssize_t max_body) except -1
