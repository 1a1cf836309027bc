"""The domain's state of one connection, where it needs any: requests held back while a
login is in flight, and the users it watches. Kept in the connection's `extra` slot
and made on first use: most connections never log in twice or watch anyone, and idle
memory counts."""


class Session:
    __slots__ = ("pending", "busy", "watching")

    def __init__(self):
        self.pending = []   # requests that arrived while login/auth was in flight
        self.busy = False
        self.watching = set()


def session(conn):
    s = conn.extra
    if s is None:
        s = conn.extra = Session()
    return s
