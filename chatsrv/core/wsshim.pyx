# cython: language_level=3
"""The only code that touches picows internals: the transport's socket and its write
function, for writing a connection's coalesced frames straight to the socket as picows'
own send does. Those fields are not picows' public API and their layout is fixed by
the picows.pxd the core was compiled against, so importing this checks the version."""
from cpython.bytes cimport PyBytes_FromStringAndSize

import picows

cdef extern from "<sys/socket.h>" nogil:
    ssize_t c_send "send" (int fd, const void* buf, size_t n, int flags)
    int MSG_NOSIGNAL

PICOWS_VERSION = "2.3.1"    # the same pin as pyproject.toml's build and run requirements
if picows.__version__ != PICOWS_VERSION:
    raise ImportError(f"chatsrv's core was built for picows {PICOWS_VERSION} and reads its internals; "
                      f"picows {picows.__version__} is installed (pip install picows=={PICOWS_VERSION})")


cdef int write_now(WSTransport t, const char* data, Py_ssize_t size) except -1:
    """Writes already framed bytes: straight to the socket when the transport has nothing
    queued (so the order of bytes is kept), the rest through the transport's buffer."""
    cdef Py_ssize_t sent = -1
    if not t.is_secure and not <Py_ssize_t>t._tr_get_write_buffer_size():
        sent = c_send(t._socket, data, <size_t>size, MSG_NOSIGNAL)
    if sent < 0:
        t._tr_write(PyBytes_FromStringAndSize(data, size))
    elif sent < size:
        t._tr_write(PyBytes_FromStringAndSize(data + sent, size - sent))
    return 0
