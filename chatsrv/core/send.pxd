# Sender: the send fast path. A well-formed `send` (proto's check) to a conversation the
# router knows goes from the frame to the writer, and after the commit to the bus, push
# and the sender's ok, with no Python run per message.

cdef class Sender:
    cdef Router router
    cdef Bus bus
    cdef object notifier                # push: on_message(members, record), or None
    cdef object writer
    cdef readonly object latency        # send -> commit -> ok, a metrics histogram
    cdef Py_ssize_t max_body

    cdef bint try_send(self, Conn c, dict d) except -1
    cpdef committed(self, Appended a, object origin, list members_after)


cdef class SendDone:
    cdef Conn conn
    cdef object rid
    cdef Sender sender
    cdef double t0
