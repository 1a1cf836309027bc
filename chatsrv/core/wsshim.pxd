# The one door to picows internals (fields outside its public API, whose layout is fixed
# by the pinned version's picows.pxd). Everything else in the core uses picows' public API.
from picows.picows cimport WSTransport

cdef int write_now(WSTransport t, const char* data, Py_ssize_t size) except -1
