# cython: language_level=3
"""The bus of a single process: straight into this process's router, one C call, as
fan-out cost before there was a bus. Holds nothing of its own."""
cimport cython

from chatsrv.bus.base cimport Bus
from chatsrv.core._core cimport Router
from chatsrv.core.delivery cimport Delivery


@cython.final
cdef class LocalBus(Bus):
    cdef readonly Router router

    def __init__(self, Router router):
        self.router = router

    cpdef publish(self, Delivery d):
        self.router.deliver(d)

    cpdef presence(self, str user, bytes event):
        self.router.to_watchers(user, event)
