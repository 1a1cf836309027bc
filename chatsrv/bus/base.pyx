# cython: language_level=3
"""The bus interface. A committed message goes out as `publish(Delivery)`; a presence
change as `presence(user, event)` (the encoded `presence` event for every connection
watching user). Implementations deliver them to routers: `local` to this process's, a
cluster one to every node's. Callers must not assume the delivery has happened when
the call returns, nor that the router is in this process."""
from chatsrv.core.delivery cimport Delivery


cdef class Bus:
    cpdef publish(self, Delivery d):
        """Delivers d to every connection of its members (but d.origin), in commit order."""
        raise NotImplementedError

    cpdef presence(self, str user, bytes event):
        """Sends event to every connection watching user."""
        raise NotImplementedError
