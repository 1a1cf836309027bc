# cython: language_level=3
"""`Delivery`: a committed message and who gets it at which inbox position, handed from
the commit to the bus and from the bus to a router. It holds no connection state and
does no I/O; `origin` is only compared by identity (a router skips it)."""


cdef class Delivery:
    """conv's message `record`, for members[i] at inbox position positions[i]. origin is
    the sending connection or None; members_after is the conversation's membership after
    this message (it differs from members when the message removes someone)."""

    def __init__(self, str conv, bytes record, list members, list positions, origin=None,
                 list members_after=None):
        if len(members) != len(positions):
            raise ValueError("a position for every member")
        self.conv = conv
        self.record = record
        self.members = members
        self.positions = positions
        self.origin = origin
        self.members_after = members if members_after is None else members_after

    def __repr__(self):
        return f"<Delivery conv={self.conv} to {len(self.members)}>"
