# Sender and SendDone (send.pxd): the send fast path, and what happens after any
# message commits (fan-out through the bus, push). Included in _core.pyx.


@cython.final
cdef class Sender:
    """Takes a well-formed `send` (proto's compiled check decides that) to a conversation
    the router knows straight from the frame to the writer. Anything else (a new
    conversation, a malformed or refused request) returns False and takes the hub's
    path, which gives the exact answer. `committed` is the one way out of a commit, for
    the hub's messages too: the bus, then push."""

    def __init__(self, Router router, Bus bus, notifier, writer, latency, Py_ssize_t max_body):
        self.router = router
        self.bus = bus
        self.notifier = notifier
        self.writer = writer
        self.latency = latency
        self.max_body = max_body

    cdef bint try_send(self, Conn c, dict d) except -1:
        cdef int kind = send_kind(d, self.max_body)
        if kind == SEND_NOT:
            return False
        if kind == SEND_TO:
            conv = _direct(c.user, d["to"])
        else:
            conv = d["conv"]
        members = self.router.members.get(conv)
        if members is None or c.user not in members:
            return False
        try:
            self.writer.submit(AppendMessage(c.user, conv, d["body"], d["cid"]), SendDone(c, d.get("id")))
        except RuntimeError:        # shutting down: the hub answers unavailable
            return False
        return True

    cpdef committed(self, Appended a, object origin, list members_after):
        """A message is committed: to every connection of its members through the bus
        (but origin's), and to push. Nothing for a deduplicated one."""
        if a.dup:
            return
        self.bus.publish(Delivery(a.conv, a.record, a.members, a.positions, origin, members_after))
        if self.notifier is not None:
            self.notifier.on_message(a.members, a.record)


@cython.final
@cython.freelist(64)
cdef class SendDone:
    """The end of a send, on the loop after its commit: out through the connection's
    Sender (bus, push), then the ok; a failed write is answered by the connection's hub,
    which answers every other request. Made by the fast path and by the domain's send."""

    def __init__(self, Conn conn, rid):
        self.conn = conn
        self.rid = rid
        self.sender = conn.sender
        self.t0 = clock.now()

    def __call__(self, Appended result, error):
        if error is not None:
            self.conn.hub.write_failed(self.conn, self.rid, error)
            return
        self.sender.latency.observe(clock.now() - self.t0)
        self.sender.committed(result, self.conn, None)
        self.conn.send(send_ok(self.rid, result.conv, result.seq, result.ts, result.inbox))
        self.conn.router.n_send_ok += 1
