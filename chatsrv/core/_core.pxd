# The core's compiled surface, one extension assembled from a .pxd/.pyx pair per concept
# (as uvloop's loop.pxd is): connection, router, send path. Other extensions (the bus)
# cimport it from here.
from libc.stdint cimport uint64_t
from picows.picows cimport WSListener, WSTransport, WSFrame

from chatsrv.bus.base cimport Bus
from chatsrv.core.delivery cimport Delivery
from chatsrv.store.message cimport Appended

include "conn.pxd"
include "router.pxd"
include "send.pxd"
