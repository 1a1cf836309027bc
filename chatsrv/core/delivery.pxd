# A committed message on its way to the connections that should see it: what the bus
# carries from the commit to the routers. Typed fields instead of a tuple read by index.

cdef class Delivery:
    cdef readonly str conv
    cdef readonly bytes record          # the stored `"conv":...}` tail of the `msg` event
    cdef readonly list members          # the recipients
    cdef readonly list positions        # positions[i]: the inbox position of members[i]
    cdef readonly object origin         # the connection that sent it (its ok reply carries it), or None
    cdef readonly list members_after    # the conversation's members once committed (a group change)
