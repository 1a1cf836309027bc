"""Notifications to the devices of users who are not connected. The rest of the server
knows only `Notifier`: it is told of every committed message and every read, once, on
the loop, and must return at once (any work it has goes to its own threads).
Web Push (webpush.py) is one implementation; `Notifier` itself notifies nobody.

Must never block the loop or the writer, or be told anything per recipient by the
core: one call per message, with the members, and the notifier sorts out whom to tell.
"""


class Notifier:
    """Notifies nobody: the interface, and what a server without push uses."""

    enabled = False          # whether notifications are sent (GET /settings says so to clients)
    public_key = None        # what clients subscribe with (Web Push: the VAPID application server key)

    def on_message(self, members, record):
        """A message (`record`: its stored `"conv":...}` tail) was committed for `members`."""

    def on_read(self, user, device, conv, seq):
        """`user` read `conv` up to `seq` on `device`."""

    def start(self):
        pass

    def cancel_grace(self):
        """Loop thread, at shutdown before stop()."""

    def stop(self, timeout=2.0):
        pass

    def collect(self):
        """prometheus_client collector protocol: this notifier's metric families."""
        return iter(())
