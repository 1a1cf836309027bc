# cython: language_level=3
"""The hot path: connections, this process's routing tables, fan-out and the send fast
path, one extension assembled from a .pyx/.pxd pair per concept (conn, router, send;
uvloop's loop.pyx is the model), so their calls to each other are C calls.

It owns per-connection and per-message work and must never run Python code per
recipient, know the store's layout, or decide what an op means (the hub does, once per
request). picows internals are reached only through wsshim.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy
from libc.stdint cimport uint64_t
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode

from chatsrv.bus.base cimport Bus
from chatsrv.core cimport clock
from chatsrv.core.delivery cimport Delivery
from chatsrv.core.wsshim cimport write_now
from chatsrv.proto.check cimport send_kind, SEND_NOT, SEND_TO
from chatsrv.proto.encode cimport msg_layout, msg_inbox, MSG_INBOX_END, send_ok
from chatsrv.store.message cimport Appended, AppendMessage

import orjson

from chatsrv import convid

cdef object _loads = orjson.loads
cdef object _direct = convid.direct

include "conn.pyx"
include "router.pyx"
include "send.pyx"
