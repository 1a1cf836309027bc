# Conn: one WebSocket connection (a picows listener as a cdef class, so frames arrive
# without Python's call protocol). Its life is one ConnState; the hub reads user, device,
# addr and the state, and moves it only through authenticate() and synced().

cpdef enum ConnState:
    CONNECTING = 0   # upgrade accepted; picows has not called on_ws_connected yet
    OPEN = 1         # no user yet: only requests that need no authentication are served
    REPLAYING = 2    # authenticated; the backlog is being sent and live fan-out skips it
    LIVE = 3         # authenticated and synced: fan-out reaches it
    CLOSING = 4      # our CLOSE went out or the peer's came in: frames in are dropped, none go out
    CLOSED = 5       # the socket is gone


cdef struct Bucket:      # the request rate: a token bucket
    double tokens
    double refilled      # when tokens was last topped up (monotonic s)
    double rate          # tokens per second
    double burst         # the most tokens held


cdef class Conn(WSListener):
    cdef public object hub
    cdef readonly Router router
    cdef readonly Sender sender         # the send fast path, or None
    cdef readonly WSTransport transport
    cdef readonly ConnState state
    cdef readonly str user              # set by authenticate(), kept until the connection is gone
    cdef readonly str device
    cdef public str addr
    cdef public str forwarded           # the upgrade's X-Forwarded-For, used only behind a trusted proxy
    cdef readonly bint paused           # the transport is over its high-water mark
    cdef public uint64_t last_sent      # highest inbox position sent on this connection
    cdef public object timer
    cdef public object resume_cb        # called once when writing resumes (replay waits on it)
    cdef public object extra            # hub-owned per-connection data (watches and such)
    cdef public double last_rx          # monotonic time of the last frame received
    cdef public double ping_sent        # when the unanswered keepalive ping went out, else 0
    # --echo-path: messages (text or binary) go back to the peer instead of to the hub, through
    # this same frame layer, so a WebSocket conformance suite tests what the chat runs on
    cdef public bint echo
    # set at the upgrade by admission control: the connection is closed at once with 1013
    # and this reason (its retry hint), without ever reaching the hub
    cdef public str refuse

    cdef bytearray _frag     # a fragmented message so far
    cdef bytearray _out      # frames written this loop iteration, sent in one write by Router.flush
    cdef bint _queued        # in the router's list of connections to flush
    cdef bint _in_frag
    cdef bint _frag_binary
    cdef double _frag_since  # when the unfinished fragmented message began
    cdef Py_ssize_t _max_frame
    cdef Bucket _bucket
    cdef int _limited        # requests refused in a row for the rate
    cdef int _close_after    # ... after which the connection is closed

    cpdef authenticate(self, str user, str device, uint64_t cursor)
    cpdef synced(self)
    cpdef close(self, int code, str reason, bint drop_output=*)
    cpdef _close_timed_out(self)
    cpdef drop(self)
    cpdef send(self, bytes data)
    cpdef Py_ssize_t backlog(self)
    cpdef uint64_t replay(self, list positions, list records)
    cdef int put(self, const char* data, Py_ssize_t n) except -1
    cdef int _put_frame(self, unsigned char first, const char* data, Py_ssize_t n) except -1
    cdef int flush(self, bint force) except -1
    cdef bint _hold_frag(self, Py_ssize_t n) except -1
    cdef _drop_frag(self)
    cdef bint _take_token(self) noexcept
    cdef _answer_close(self, WSFrame frame)
    cdef _answer_peer_close(self, int code, bytes reason)
    cdef _message(self, const char* data, Py_ssize_t size, bint binary)
