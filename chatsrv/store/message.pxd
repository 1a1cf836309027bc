# The typed result of storing a message, and the write op that stores one: the surface
# the core cimports (it reads an Appended's fields as C struct members on the send path).
from libc.stdint cimport uint64_t


cdef class Appended:
    cdef readonly bint dup             # the cid was seen before: nothing stored, first send's fields
    cdef readonly str conv
    cdef readonly uint64_t seq
    cdef readonly uint64_t ts
    cdef readonly uint64_t inbox       # the sender's own inbox position (0 if not a recipient)
    cdef readonly bytes record         # the stored `"conv":...}` tail of the message's JSON
    cdef readonly list positions       # positions[i]: the inbox position of members[i]
    cdef readonly list members         # the recipients


cdef class AppendMessage:
    cdef readonly str user, conv
    cdef readonly object body, cid
    cdef readonly tuple create_direct  # the members of a direct conversation to create first, or None
