# Router (router.pxd): this process's connection, membership and watcher tables, fan-out,
# and the once-per-iteration flush. Included in _core.pyx.


@cython.final
cdef class Router:
    """Who is connected here, and fan-out to them. An event is encoded once and only the
    recipient's inbox position is spliced into the bytes; nothing runs Python per recipient."""

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
            c.flush(False)

    cdef Py_ssize_t _send_all(self, list conns, bytes data, Conn exclude) except -1:
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
        cdef double now = clock.now()
        cdef Py_ssize_t dropped = 0
        cdef Conn c
        for c in list(conns):
            if c.state >= CLOSING or c.transport is None:
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

    cdef bint _writable(self, Conn c) except -1:
        """False for a connection that must not be written to; closes a slow one."""
        if c.state >= CLOSING:
            return False
        if c.paused and c.backlog() > self.write_limit:
            self.n_slow_closed += 1
            c.close(WSCloseCode.TRY_AGAIN_LATER, "too slow: output backlog over the limit", True)
            return False
        return True

    cpdef Py_ssize_t deliver(self, Delivery d):
        """Sends a committed message to every live connection of its members but its
        origin, each at its member's inbox position, and keeps the membership the send
        fast path checks. The event is laid out once (proto's encoder); per recipient
        only the inbox digits and the constant prefix in front of them are rewritten."""
        cdef Py_ssize_t i, start, sent = 0
        cdef Py_ssize_t end = MSG_INBOX_END + 1 + PyBytes_GET_SIZE(d.record)
        cdef char* p = msg_layout(self._buf, d.record)
        cdef list members = d.members, positions = d.positions
        cdef object origin = d.origin
        cdef uint64_t pos
        cdef list conns
        cdef Conn c
        self.members[d.conv] = d.members_after
        for i in range(len(members)):
            conns = self.users.get(members[i])
            if conns is None:
                continue
            pos = positions[i]
            start = msg_inbox(p, pos)
            for c in conns:
                if c is origin or c.state != LIVE or pos <= c.last_sent or not self._writable(c):
                    continue
                c.put(p + start, end - start)
                c.last_sent = pos
                sent += 1
        self.n_messages += 1
        self.n_delivered += sent
        return sent

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
