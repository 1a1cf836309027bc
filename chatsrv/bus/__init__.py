"""The bus: the seam between "a message was committed" and "deliver it to the connections
that should see it". `Bus` (base.pyx) is the interface, `LocalBus` (local.pyx) delivers to
this process's router with a C call. It must never store, validate or decide who may see
what: what it carries was committed and addressed before it got here."""
from .base import Bus
from .local import LocalBus

__all__ = ["Bus", "LocalBus"]
