# The monotonic and wall clocks as inline C (no Python call on the hot path).
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME


cdef inline double now() noexcept nogil:
    """Monotonic seconds."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9
