"""chatsrv's hot path, compiled (`_core`: Conn, Router, Sender; `delivery`: Delivery;
`wsshim`: the one door to picows internals). See _core.pyx for what it owns and must
never do; docs/architecture.md for the hops of a send through it."""
from ._core import Conn, ConnState, Router, SendDone, Sender
from .delivery import Delivery

__all__ = ["Conn", "ConnState", "Delivery", "Router", "SendDone", "Sender"]
