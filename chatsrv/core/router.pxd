# Router: this process's tables of who is connected (user -> authenticated connections),
# conversation membership for the send fast path, presence watchers; fan-out; the flush
# of every connection's frames once per loop iteration.

cdef class Router:
    cdef readonly dict users            # user -> list of their authenticated connections
    cdef readonly dict members          # conv -> member names; filled from the store on first use
    cdef readonly dict watchers         # user -> list of connections watching their presence
    cdef readonly object loop
    cdef readonly double close_timeout  # seconds a closing connection waits for the peer's CLOSE
    cdef readonly double drain_timeout  # then seconds its last output may wait for a peer that stopped reading
    cdef readonly Py_ssize_t write_limit
    cdef list _dirty                    # connections with frames to write at the end of this iteration
    cdef bint _flush_scheduled
    cdef bytearray _buf                 # the event being fanned out
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
    cdef public unsigned long long n_refused      # connections refused by admission control
    cdef public unsigned long long n_frag_refused     # connections closed: unfinished messages over the cap
    cdef public unsigned long long n_frag_expired     # connections closed: a message not finished in time
    cdef public Py_ssize_t frag_bytes                 # bytes of unfinished messages held, all connections
    cdef readonly Py_ssize_t max_frag_bytes

    cdef int queue_flush(self, Conn c) except -1
    cpdef flush(self)
    cdef Py_ssize_t _send_all(self, list conns, bytes data, Conn exclude) except -1
    cdef bint _writable(self, Conn c) except -1
    cpdef Py_ssize_t keepalive(self, conns, double interval, double timeout, double frag_timeout)
    cpdef opened(self, Conn c)
    cpdef closed(self, Conn c)
    cpdef bint attach(self, Conn c)
    cpdef bint detach(self, Conn c)
    cpdef bint online(self, str user)
    cpdef list offline(self, list members)
    cpdef watch(self, Conn c, str user)
    cpdef unwatch(self, Conn c, str user)
    cpdef bint watched(self, str user)
    cpdef Py_ssize_t to_watchers(self, str user, bytes data)
    cpdef list conns_of(self, str user)
    cpdef Py_ssize_t deliver(self, Delivery d)
    cpdef Py_ssize_t broadcast(self, users, bytes data, Conn exclude=*, str skip_user=*)
