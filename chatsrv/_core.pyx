# cython: language_level=3
"""The routing core: connections, the in-memory tables, and per-message work.

`Conn` is one WebSocket (a picows listener as a cdef class, so frames arrive
without Python's call protocol): it reassembles fragments, enforces the frame
cap, UTF-8, close handshake and the request rate, decodes each text message
once, and queues its outgoing frames to leave in one write per loop iteration.
`Router` holds who is connected, conversation membership and presence
watchers, and fans events out: an event is encoded once and only the
recipient's inbox position is spliced into the bytes. `Sender` takes a
well-formed `send` to a known conversation from the frame to the writer (the
store's compiled AppendMessage stores it inside the writer's transaction);
every other request goes to the hub, once. Nothing here runs Python code per recipient.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy
from libc.stdint cimport uint64_t, uint8_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME

cdef extern from "<sys/socket.h>" nogil:
    ssize_t c_send "send" (int fd, const void* buf, size_t n, int flags)
    int MSG_NOSIGNAL

from chatsrv.store.message cimport Appended, AppendMessage
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode

from chatsrv.proto.check cimport send_kind, SEND_NOT, SEND_TO
from chatsrv.proto.encode cimport msg_layout, msg_inbox, MSG_INBOX_END, send_ok

import logging

import orjson

log = logging.getLogger("chatsrv.core")

cdef object _dumps = orjson.dumps
cdef object _loads = orjson.loads

cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline void _put_u64be(char* p, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        p[7 - i] = <char>(v & 0xff)
        v >>= 8


cdef class Conn(WSListener):
    """One WebSocket connection. Public fields are read and set by the hub."""

    cdef public object hub
    cdef public Router router
    cdef public WSTransport transport
    cdef public str user
    cdef public str device
    cdef public str addr
    cdef public str forwarded          # the upgrade's X-Forwarded-For, used only behind a trusted proxy
    cdef public bint authed
    # While the backlog is replayed, live fan-out skips this connection; the
    # replay reads the store up to the newest commit, so nothing is missed.
    cdef public bint replaying
    cdef public bint paused
    cdef public bint closing
    cdef public uint64_t last_sent      # highest inbox position sent on this connection
    cdef public object timer
    cdef public object resume_cb        # called once when writing resumes (replay waits on it)
    cdef public object extra            # hub-owned per-connection data (watches and such)
    cdef public double last_rx          # monotonic time of the last frame received
    cdef public double ping_sent        # when the unanswered keepalive ping went out, else 0
    # --echo-path: messages (text or binary) go back to the peer instead of to the hub, through
    # this same frame layer, so a WebSocket conformance suite tests what the chat runs on
    cdef public bint echo

    cdef bytearray _frag
    cdef bytearray _out      # frames written this loop iteration, sent in one write by Router.flush
    cdef bint _queued        # in the router's list of connections to flush
    cdef bint _in_frag
    cdef bint _frag_binary
    cdef double _frag_since   # when the unfinished fragmented message began
    cdef Py_ssize_t _max_frame
    cdef double _tokens
    cdef double _refilled
    cdef double _rate
    cdef double _burst
    cdef int _limited
    cdef int _close_after

    def __init__(self, hub, Router router, str addr, Py_ssize_t max_frame, double rate, double burst,
                 int close_after):
        self.hub = hub
        self.router = router
        self.addr = addr
        self._max_frame = max_frame
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._refilled = _now()
        self._close_after = close_after
        self.last_rx = self._refilled

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
        self.router.opened(self)
        if not self.echo:
            self.hub.on_open(self)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.closing = True
        self._drop_frag()
        self.router.closed(self)
        if not self.echo:
            self.hub.on_close(self)

    cpdef pause_writing(self):
        self.paused = True

    cpdef resume_writing(self):
        self.paused = False
        self._flush(False)
        cb = self.resume_cb
        if cb is not None:
            self.resume_cb = None
            cb()

    cpdef close(self, int code, str reason, bint drop_output=False):
        """Sends CLOSE with code; the socket is closed when the peer answers it or after
        the router's close timeout. Closing at once would reset a connection whose peer
        is still sending, and the reset makes its kernel discard the CLOSE unread.
        drop_output: the frames not yet handed to the transport are discarded, so that
        the CLOSE of a slow consumer is not queued behind megabytes it will never read."""
        if self.closing:
            return
        if drop_output and self._out is not None:
            PyByteArray_Resize(self._out, 0)
        self._flush(True)
        self.closing = True
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
        self.closing = True
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(False)

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
        if self.closing:
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
            _put_u64be(<char*>p + 2, <uint64_t>n)
        memcpy(p + hl, data, n)
        if not self._queued:
            self._queued = True
            self.router.queue_flush(self)
        return 0

    cdef int _flush(self, bint force) except -1:
        """Hands the queued frames to the socket or the transport. While the transport is
        over its high mark they stay here (unless force), whole frames that a slow close
        can drop; the transport's own buffer, which nobody can trim, stays small."""
        cdef Py_ssize_t size, sent
        cdef char* data
        cdef WSTransport t = self.transport
        self._queued = False
        if self._out is None or (self.paused and not force):
            return 0
        size = PyByteArray_GET_SIZE(self._out)
        if size == 0:
            return 0
        data = PyByteArray_AS_STRING(self._out)
        if not self.closing and t is not None and not t.is_disconnected:
            # As picows' own send does (the same fields, pinned version): straight to the
            # socket when nothing is queued in the transport, else through the transport.
            sent = -1
            if not t.is_secure and not <Py_ssize_t>t._tr_get_write_buffer_size():
                sent = c_send(t._socket, data, <size_t>size, MSG_NOSIGNAL)
            if sent < 0:
                t._tr_write(PyBytes_FromStringAndSize(data, size))
            elif sent < size:
                t._tr_write(PyBytes_FromStringAndSize(data + sent, size - sent))
        PyByteArray_Resize(self._out, 0)
        return 0

    cpdef send(self, bytes data):
        self.put(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cpdef Py_ssize_t backlog(self):
        """Bytes written but not yet taken by the kernel."""
        return (self.transport.underlying_transport.get_write_buffer_size()
                + (PyByteArray_GET_SIZE(self._out) if self._out is not None else 0))

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType t = frame.msg_type
        cdef Py_ssize_t n
        cdef bytearray frag
        if self.closing:
            # after our CLOSE, frames are dropped until the peer's CLOSE ends it
            if t == WSMsgType.CLOSE:
                self.transport.disconnect()
            return
        # any frame shows the peer is alive; a pong also answers the keepalive ping
        self.last_rx = _now()
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
                self._frag_since = _now()
                if self._frag is None:
                    self._frag = bytearray()
                PyByteArray_Resize(self._frag, frame.payload_size)
                memcpy(PyByteArray_AS_STRING(self._frag), frame.payload_ptr, frame.payload_size)
                return
            self._message(frame.payload_ptr, frame.payload_size, t == WSMsgType.BINARY)
        elif t == WSMsgType.CLOSE:
            self._answer_close(frame)

    cdef bint _hold_frag(self, Py_ssize_t n):
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

    cdef _answer_close(self, WSFrame frame):
        cdef int code = 1000
        if frame.payload_size == 1:
            code = 1002
        elif frame.payload_size >= 2:
            code = frame.get_close_code()
            if not (code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
                    or 3000 <= code <= 4999):
                code = 1002
            else:
                try:
                    frame.get_close_reason()
                except UnicodeDecodeError:
                    code = 1007
        self._answer_peer_close(code, b"")

    cdef _answer_peer_close(self, int code, bytes reason):
        """The peer's CLOSE has arrived: answer it and close the socket at once."""
        self._flush(True)
        self._drop_frag()
        self.closing = True
        self.transport.send_close(<WSCloseCode>code, reason)
        self.transport.disconnect()

    cdef _message(self, char* data, Py_ssize_t size, bint binary):
        cdef double now
        text = None
        if not binary:
            try:
                text = PyUnicode_DecodeUTF8(data, size, NULL)
            except UnicodeDecodeError:
                self.close(WSCloseCode.INVALID_TEXT, "invalid UTF-8")
                return
        now = _now()
        self._tokens += (now - self._refilled) * self._rate
        self._refilled = now
        if self._tokens > self._burst:
            self._tokens = self._burst
        if self._tokens < 1.0:
            self._limited += 1
            self.router.n_rate_limited += 1
            if self._limited >= self._close_after or self.echo:
                self.close(WSCloseCode.POLICY_VIOLATION, "request rate limit exceeded")
            else:
                self.hub.on_limited(self, text)
            return
        self._tokens -= 1.0
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
        if (self.authed and type(obj) is dict and self.router.sender is not None
                and self.router.sender.try_send(self, <dict>obj)):
            return
        self.hub.on_object(self, obj)


@cython.final
cdef class Router:
    """Who is connected, and fan-out. Users map to the list of their authenticated connections."""

    cdef public dict users
    # conv -> list of member names; filled from the store on first use
    cdef public dict members
    cdef public dict watchers    # user -> list of connections watching their presence
    cdef public object loop
    cdef public double close_timeout   # seconds a closing connection waits for the peer's CLOSE
    cdef public double drain_timeout   # then seconds its last output may wait for a peer that stopped reading
    cdef public object push            # the push sender, when push notifications are on
    cdef public Sender sender          # the send fast path, once the server has wired it
    cdef list _dirty                   # connections with frames to write at the end of this iteration
    cdef bint _flush_scheduled
    cdef public Py_ssize_t write_limit
    cdef bytearray _buf
    cdef public unsigned long long n_open
    cdef public unsigned long long n_opened
    cdef public unsigned long long n_authed
    cdef public unsigned long long n_requests
    cdef public unsigned long long n_rate_limited  # requests refused by a connection's token bucket
    cdef public unsigned long long n_send_ok       # sends answered ok (the hub counts every other reply)
    cdef public unsigned long long n_messages
    cdef public unsigned long long n_delivered
    cdef public unsigned long long n_events
    cdef public unsigned long long n_slow_closed
    cdef public unsigned long long n_ping_dropped
    cdef public unsigned long long n_frag_refused     # connections closed: unfinished messages over the cap
    cdef public unsigned long long n_frag_expired     # connections closed: a message not finished in time
    cdef public Py_ssize_t frag_bytes                 # bytes of unfinished messages held, all connections
    cdef public Py_ssize_t max_frag_bytes

    def __init__(self, Py_ssize_t write_limit, loop, double close_timeout=2.0, double drain_timeout=30.0,
                 Py_ssize_t max_frag_bytes=64 << 20):
        self.max_frag_bytes = max_frag_bytes
        self.loop = loop
        self.close_timeout = close_timeout
        self.drain_timeout = drain_timeout
        self._dirty = []
        self.users = {}
        self.members = {}
        self.watchers = {}
        self.write_limit = write_limit
        self._buf = bytearray()

    cdef int queue_flush(self, Conn c) except -1:
        self._dirty.append(c)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)
        return 0

    cpdef flush(self):
        """Writes every connection's queued frames, one write per connection."""
        cdef Conn c
        cdef list dirty = self._dirty
        self._dirty = []
        self._flush_scheduled = False
        for c in dirty:
            c._flush(False)

    cdef Py_ssize_t _send_all(self, list conns, bytes data, Conn exclude):
        cdef Py_ssize_t sent = 0
        cdef Conn c
        for c in conns:
            if c is exclude or not self._writable(c):
                continue
            c.put(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            sent += 1
        self.n_events += sent
        return sent

    cpdef Py_ssize_t keepalive(self, conns, double interval, double timeout, double frag_timeout):
        """One sweep over all connections: ping those silent for `interval`, drop those
        whose ping went unanswered for `timeout`, close those that have not finished a
        fragmented message in `frag_timeout` (pongs alone must not let a client hold
        one forever). Returns how many were dropped."""
        cdef double now = _now()
        cdef Py_ssize_t dropped = 0
        cdef Conn c
        for c in list(conns):
            if c.closing or c.transport is None:
                continue
            if c._in_frag and now - c._frag_since >= frag_timeout:
                self.n_frag_expired += 1
                c.close(WSCloseCode.POLICY_VIOLATION, "fragmented message not finished in time")
                continue
            if c.ping_sent != 0:
                if now - c.ping_sent >= timeout:
                    dropped += 1
                    c.drop()
            elif now - c.last_rx >= interval:
                c.ping_sent = now
                c.transport.send_ping()
        self.n_ping_dropped += dropped
        return dropped

    cpdef opened(self, Conn c):
        self.n_open += 1
        self.n_opened += 1

    cpdef closed(self, Conn c):
        self.n_open -= 1

    cpdef bint attach(self, Conn c):
        """c is now authenticated as c.user: it receives that user's events.
        True when this made the user online."""
        conns = self.users.get(c.user)
        self.n_authed += 1
        if conns is None:
            self.users[c.user] = [c]
            return True
        conns.append(c)
        return False

    cpdef bint detach(self, Conn c):
        """True when this made the user offline."""
        conns = self.users.get(c.user)
        if conns is None:
            return False
        try:
            conns.remove(c)
        except ValueError:
            return False
        self.n_authed -= 1
        if not conns:
            del self.users[c.user]
            return True
        return False

    cpdef bint online(self, str user):
        return user in self.users

    cpdef list offline(self, list members):
        """The members with no authenticated connection."""
        cdef dict users = self.users
        return [m for m in members if m not in users]

    cpdef watch(self, Conn c, str user):
        conns = self.watchers.get(user)
        if conns is None:
            self.watchers[user] = [c]
        elif c not in conns:
            conns.append(c)

    cpdef unwatch(self, Conn c, str user):
        conns = self.watchers.get(user)
        if conns is not None:
            try:
                conns.remove(c)
            except ValueError:
                return
            if not conns:
                del self.watchers[user]

    cpdef bint watched(self, str user):
        return user in self.watchers

    cpdef Py_ssize_t to_watchers(self, str user, bytes data):
        """Sends a presence event to every connection watching user."""
        conns = self.watchers.get(user)
        return self._send_all(conns, data, None) if conns is not None else 0

    cpdef list conns_of(self, str user):
        return self.users.get(user) or []

    cdef inline bint _writable(self, Conn c):
        """False for a connection that must not be written to; closes a slow one."""
        if c.closing:
            return False
        if c.paused and c.backlog() > self.write_limit:
            self.n_slow_closed += 1
            c.close(WSCloseCode.TRY_AGAIN_LATER, "too slow: output backlog over the limit", True)
            return False
        return True

    cpdef Py_ssize_t deliver(self, list members, list positions, bytes record, Conn exclude):
        """Sends one stored message to every connection of every member.

        members[i] got the message at inbox position positions[i]; record is the
        stored `"conv":...}` tail. The event is laid out once (proto's encoder); per
        recipient only the inbox digits and the constant prefix are rewritten.
        """
        cdef Py_ssize_t i, start, sent = 0
        cdef Py_ssize_t end = MSG_INBOX_END + 1 + PyBytes_GET_SIZE(record)
        cdef char* p = msg_layout(self._buf, record)
        cdef uint64_t pos
        cdef list conns
        cdef Conn c
        for i in range(len(members)):
            conns = self.users.get(members[i])
            if conns is None:
                continue
            pos = positions[i]
            start = msg_inbox(p, pos)
            for c in conns:
                if c is exclude or c.replaying or pos <= c.last_sent or not self._writable(c):
                    continue
                c.put(p + start, end - start)
                c.last_sent = pos
                sent += 1
        self.n_messages += 1
        self.n_delivered += sent
        return sent

    cpdef fanout(self, Appended result, Conn exclude, list members_after):
        """Delivers a committed message to its members' connections and hands it to
        push; nothing for a deduplicated one."""
        if result.dup:
            return
        members = result.members
        self.members[result.conv] = members if members_after is None else members_after
        self.deliver(members, result.positions, result.record, exclude)
        if self.push is not None:
            self.push.on_message(members, result.record)

    cpdef Py_ssize_t broadcast(self, users, bytes data, Conn exclude=None, str skip_user=None):
        """Sends the same event bytes to every connection of each user in `users`,
        except the connection `exclude` and every connection of `skip_user`."""
        cdef Py_ssize_t sent = 0
        for u in users:
            if skip_user is not None and u == skip_user:
                continue
            conns = self.users.get(u)
            if conns is not None:
                sent += self._send_all(conns, data, exclude)
        return sent


cpdef uint64_t replay(Conn c, list positions, list records):
    """Sends backlog entries (the store's inbox_after: positions and stored records) to c
    as `msg` events. Returns the position of the last one sent, or 0."""
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
        c.put(p + start, MSG_INBOX_END + 1 + PyBytes_GET_SIZE(rec) - start)
        c.last_sent = pos
    return pos


# --- the send path: one request in, one stored message, fan-out and reply out,
# with no Python code run per message once a conversation is known

@cython.final
cdef class SendDone:
    """The end of a send, on the loop after its commit: fan-out, then the sender's ok."""
    cdef Conn conn
    cdef object rid
    cdef object hub
    cdef double t0

    def __init__(self, Conn conn, rid, hub):
        self.conn = conn
        self.rid = rid
        self.hub = hub
        self.t0 = _now()

    def __call__(self, Appended result, error):
        if error is not None:
            self.hub.write_failed(self.conn, self.rid, error)
            return
        self.hub.send_latency.observe(_now() - self.t0)
        self.conn.router.fanout(result, self.conn, None)
        self.conn.send(send_ok(self.rid, result.conv, result.seq, result.ts, result.inbox))
        self.conn.router.n_send_ok += 1


@cython.final
cdef class Sender:
    """Takes a well-formed `send` (proto's compiled check decides that) to a known
    conversation straight from the frame to the writer. Anything else (a new
    conversation, a malformed or refused request) returns False and takes the hub's
    path, which gives the exact answer."""
    cdef Router router
    cdef object hub
    cdef object writer
    cdef Py_ssize_t max_body

    def __init__(self, Router router, hub, writer, Py_ssize_t max_body):
        self.router = router
        self.hub = hub
        self.writer = writer
        self.max_body = max_body

    cdef bint try_send(self, Conn c, dict d) except -1:
        cdef int kind = send_kind(d, self.max_body)
        if kind == SEND_NOT:
            return False
        if kind == SEND_TO:
            to = <str>d["to"]
            conv = ("d:" + c.user + ":" + to) if c.user < to else ("d:" + to + ":" + c.user)
        else:
            conv = d["conv"]
        members = self.router.members.get(conv)
        if members is None or c.user not in members:
            return False
        try:
            self.writer.submit(AppendMessage(c.user, conv, d["body"], d["cid"]),
                               SendDone(c, d.get("id"), self.hub))
        except RuntimeError:        # shutting down: the hub answers unavailable
            return False
        return True
