# Conn (conn.pxd): framing, reassembly, the close handshake, the request rate and the
# output buffer of one connection. Included in _core.pyx.


cdef inline void _put_u64be(unsigned char* p, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        p[7 - i] = <unsigned char>(v & 0xff)
        v >>= 8


# close codes a peer may send (RFC 6455 7.4.1, 7.4.2); others are answered with 1002
cdef inline bint _valid_close_code(int code) noexcept:
    return (1000 <= code <= 1003 or 1007 <= code <= 1014) or 3000 <= code <= 4999


cdef class Conn(WSListener):
    """One WebSocket connection: reassembles fragments, enforces the frame cap, UTF-8, the
    close handshake and the request rate, decodes each text message once, and queues its
    outgoing frames to leave in one write per loop iteration. A well-formed `send` goes
    to the Sender; every other request to the hub, once."""

    def __init__(self, hub, Router router, Sender sender, str addr, Py_ssize_t max_frame, double rate,
                 double burst, int close_after):
        self.hub = hub
        self.router = router
        self.sender = sender
        self.addr = addr
        self.state = CONNECTING
        self._max_frame = max_frame
        self._bucket.rate = rate
        self._bucket.burst = burst
        self._bucket.tokens = burst
        self._bucket.refilled = clock.now()
        self._close_after = close_after
        self.last_rx = self._bucket.refilled

    # --- the state, as the hub reads it

    @property
    def authed(self):
        """Authenticated: true from authenticate() on, while closing too (so the close
        takes it out of the router's tables)."""
        return self.user is not None

    @property
    def replaying(self):
        return self.state == REPLAYING

    @property
    def closing(self):
        return self.state >= CLOSING

    cpdef authenticate(self, str user, str device, uint64_t cursor):
        """The connection is `user`'s `device`, whose backlog after inbox position `cursor`
        is replayed before it goes live (synced())."""
        if self.state != OPEN:
            raise RuntimeError(f"authenticate in state {ConnState(self.state).name}")
        self.user = user
        self.device = device
        self.last_sent = cursor
        self.state = REPLAYING

    cpdef synced(self):
        """The backlog is sent: live fan-out reaches this connection from now on."""
        if self.state == REPLAYING:
            self.state = LIVE

    # --- picows' callbacks

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        self.state = OPEN
        transport.underlying_transport.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
        self.router.opened(self)
        if self.refuse is not None:
            self.router.n_refused += 1
            self.close(WSCloseCode.TRY_AGAIN_LATER, self.refuse)
        elif not self.echo:
            self.hub.on_open(self)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.state = CLOSED
        self._drop_frag()
        self.router.closed(self)
        if not self.echo and self.refuse is None:
            self.hub.on_close(self)

    cpdef pause_writing(self):
        self.paused = True

    cpdef resume_writing(self):
        self.paused = False
        self.flush(False)
        cb = self.resume_cb
        if cb is not None:
            self.resume_cb = None
            cb()

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType t = frame.msg_type
        cdef Py_ssize_t n
        cdef bytearray frag
        if self.state >= CLOSING:
            # after our CLOSE, frames are dropped until the peer's CLOSE ends it
            if t == WSMsgType.CLOSE:
                self.transport.disconnect()
            return
        # any frame shows the peer is alive; a pong also answers the keepalive ping
        self.last_rx = clock.now()
        self.ping_sent = 0
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            if t == WSMsgType.CLOSE:        # the peer has closed already: no CLOSE to wait for
                self._answer_peer_close(WSCloseCode.PROTOCOL_ERROR, b"reserved bits set")
            else:
                self.close(WSCloseCode.PROTOCOL_ERROR, "reserved bits set")
            return
        if t == WSMsgType.TEXT or t == WSMsgType.BINARY or t == WSMsgType.CONTINUATION:
            if t == WSMsgType.CONTINUATION:
                if not self._in_frag:
                    self.close(WSCloseCode.PROTOCOL_ERROR, "continuation without a started message")
                    return
                n = PyByteArray_GET_SIZE(self._frag)
                if n + frame.payload_size > self._max_frame:
                    self.close(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
                    return
                if not self._hold_frag(frame.payload_size):
                    return
                PyByteArray_Resize(self._frag, n + frame.payload_size)
                memcpy(PyByteArray_AS_STRING(self._frag) + n, frame.payload_ptr, frame.payload_size)
                if frame.fin:
                    frag = self._frag     # kept alive: a close inside _message drops self._frag
                    self._message(PyByteArray_AS_STRING(frag), PyByteArray_GET_SIZE(frag), self._frag_binary)
                    self._drop_frag()
                return
            if self._in_frag:
                self.close(WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
                return
            if t == WSMsgType.BINARY and not self.echo:
                self.close(WSCloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
                return
            if frame.payload_size > self._max_frame:
                self.close(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            if not frame.fin:
                if not self._hold_frag(frame.payload_size):
                    return
                self._in_frag = True
                self._frag_binary = t == WSMsgType.BINARY
                self._frag_since = clock.now()
                if self._frag is None:
                    self._frag = bytearray()
                PyByteArray_Resize(self._frag, frame.payload_size)
                memcpy(PyByteArray_AS_STRING(self._frag), frame.payload_ptr, frame.payload_size)
                return
            self._message(frame.payload_ptr, frame.payload_size, t == WSMsgType.BINARY)
        elif t == WSMsgType.CLOSE:
            self._answer_close(frame)

    # --- closing

    cpdef close(self, int code, str reason, bint drop_output=False):
        """Sends CLOSE with code; the socket is closed when the peer answers it or after
        the router's close timeout. Closing at once would reset a connection whose peer
        is still sending, and the reset makes its kernel discard the CLOSE unread.
        drop_output: the frames not yet handed to the transport are discarded, so that
        the CLOSE of a slow consumer is not queued behind megabytes it will never read."""
        if self.state >= CLOSING:
            return
        if drop_output and self._out is not None:
            PyByteArray_Resize(self._out, 0)
        self.flush(True)
        self.state = CLOSING
        self._drop_frag()
        if self.transport is not None:
            self.transport.send_close(<WSCloseCode>code, reason.encode())
            self.router.loop.call_later(self.router.close_timeout, self._close_timed_out)

    cpdef _close_timed_out(self):
        """The peer did not answer our CLOSE in time. The socket is closed after what the
        transport still holds (about its high mark and the CLOSE) has reached the
        kernel, so a peer that reads again later still learns why; a peer that reads
        nothing for the router's drain timeout is reset."""
        if self.transport is None or self.transport.is_disconnected:
            return
        self.transport.disconnect(True)
        self.router.loop.call_later(self.router.drain_timeout, self.drop)

    cpdef drop(self):
        """Closes the socket now."""
        if self.state < CLOSING:
            self.state = CLOSING
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(False)

    cdef _answer_close(self, WSFrame frame):
        """The peer's CLOSE: answered with its code when that is valid, then the socket closed."""
        cdef int code = 1000
        if frame.payload_size == 1:
            code = 1002
        elif frame.payload_size >= 2:
            code = frame.get_close_code()
            if not _valid_close_code(code):
                code = 1002
            else:
                try:
                    frame.get_close_reason()
                except UnicodeDecodeError:
                    code = 1007
        self._answer_peer_close(code, b"")

    cdef _answer_peer_close(self, int code, bytes reason):
        """The peer's CLOSE has arrived: answer it and close the socket at once."""
        self.flush(True)
        self._drop_frag()
        self.state = CLOSING
        self.transport.send_close(<WSCloseCode>code, reason)
        self.transport.disconnect()

    # --- unfinished messages: held against a server-wide cap

    cdef bint _hold_frag(self, Py_ssize_t n) except -1:
        """Counts n more bytes of an unfinished message against the server-wide cap;
        False (and the connection closed) when they would pass it."""
        cdef Router r = self.router
        if r.frag_bytes + n > r.max_frag_bytes:
            r.n_frag_refused += 1
            self.close(WSCloseCode.TRY_AGAIN_LATER, "server holds too many unfinished messages")
            return False
        r.frag_bytes += n
        return True

    cdef _drop_frag(self):
        """The unfinished message is done with (finished, or its connection closed)."""
        if self._frag is not None:
            self.router.frag_bytes -= PyByteArray_GET_SIZE(self._frag)
            self._frag = None
        self._in_frag = False

    # --- requests in

    cdef bint _take_token(self) noexcept:
        cdef double t = clock.now()
        cdef Bucket* b = &self._bucket
        b.tokens += (t - b.refilled) * b.rate
        b.refilled = t
        if b.tokens > b.burst:
            b.tokens = b.burst
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True

    cdef _message(self, const char* data, Py_ssize_t size, bint binary):
        text = None
        if not binary:
            try:
                text = PyUnicode_DecodeUTF8(data, size, NULL)
            except UnicodeDecodeError:
                self.close(WSCloseCode.INVALID_TEXT, "invalid UTF-8")
                return
        if not self._take_token():
            self._limited += 1
            self.router.n_rate_limited += 1
            if self._limited >= self._close_after or self.echo:
                self.close(WSCloseCode.POLICY_VIOLATION, "request rate limit exceeded")
            else:
                self.hub.on_limited(self, text)
            return
        self._limited = 0
        if self.echo:
            self._put_frame(0x82 if binary else 0x81, data, size)
            return
        self.router.n_requests += 1
        try:
            obj = _loads(text)
        except orjson.JSONDecodeError:
            self.hub.on_request(self, text)     # answers bad_request
            return
        if ((self.state == LIVE or self.state == REPLAYING) and type(obj) is dict and self.sender is not None
                and self.sender.try_send(self, <dict>obj)):
            return
        self.hub.on_object(self, obj)

    # --- frames out

    cdef int put(self, const char* data, Py_ssize_t n) except -1:
        """Queues one text frame; the router writes each connection's frames of this loop
        iteration together, so a batch of replies and events costs one system call."""
        return self._put_frame(0x81, data, n)

    cdef int _put_frame(self, unsigned char first, const char* data, Py_ssize_t n) except -1:
        """Queues one frame whose first header byte (FIN, opcode) is `first`."""
        cdef bytearray out
        cdef Py_ssize_t at
        cdef Py_ssize_t hl = 2 if n < 126 else (4 if n < 65536 else 10)
        cdef unsigned char* p
        if self.state >= CLOSING:
            return 0
        if self._out is None:
            self._out = bytearray()
        out = self._out
        at = PyByteArray_GET_SIZE(out)
        PyByteArray_Resize(out, at + hl + n)
        p = <unsigned char*>PyByteArray_AS_STRING(out) + at
        p[0] = first         # server frames are not masked
        if n < 126:
            p[1] = <unsigned char>n
        elif n < 65536:
            p[1] = 126
            p[2] = <unsigned char>(n >> 8)
            p[3] = <unsigned char>(n & 0xff)
        else:
            p[1] = 127
            _put_u64be(p + 2, <uint64_t>n)
        memcpy(p + hl, data, n)
        if not self._queued:
            self._queued = True
            self.router.queue_flush(self)
        return 0

    cdef int flush(self, bint force) except -1:
        """Hands the queued frames to the socket or the transport (the router calls it once
        per loop iteration). While the transport is over its high mark they stay here
        (unless force), whole frames that a slow close can drop; the transport's own
        buffer, which nobody can trim, stays small."""
        cdef Py_ssize_t size
        cdef WSTransport t = self.transport
        self._queued = False
        if self._out is None or (self.paused and not force):
            return 0
        size = PyByteArray_GET_SIZE(self._out)
        if size == 0:
            return 0
        if self.state < CLOSING and t is not None and not t.is_disconnected:
            write_now(t, PyByteArray_AS_STRING(self._out), size)
        PyByteArray_Resize(self._out, 0)
        return 0

    cpdef send(self, bytes data):
        self.put(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cpdef uint64_t replay(self, list positions, list records):
        """Queues backlog entries (records[i] at inbox position positions[i], from the
        store) as `msg` events. Returns the last position sent, or 0."""
        cdef Py_ssize_t i, start
        cdef uint64_t pos = 0
        cdef bytearray buf = bytearray()
        cdef char* p
        cdef bytes rec
        for i in range(len(positions)):
            pos = positions[i]
            rec = records[i]
            p = msg_layout(buf, rec)
            start = msg_inbox(p, pos)
            self.put(p + start, MSG_INBOX_END + 1 + PyBytes_GET_SIZE(rec) - start)
            self.last_sent = pos
        return pos

    cpdef Py_ssize_t backlog(self):
        """Bytes written but not yet taken by the kernel."""
        return (self.transport.underlying_transport.get_write_buffer_size()
                + (PyByteArray_GET_SIZE(self._out) if self._out is not None else 0))
