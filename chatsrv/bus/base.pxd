# The seam after a commit: what leaves this process's writer for every connection that
# should see it, wherever that connection is. cdef so the core calls it without Python.
from chatsrv.core.delivery cimport Delivery


cdef class Bus:
    cpdef publish(self, Delivery d)
    cpdef presence(self, str user, bytes event)
