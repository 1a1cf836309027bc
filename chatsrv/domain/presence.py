"""Presence as watchers see it. A user is online while one authenticated connection
of theirs is alive; changes are announced to watching connections after a grace
window, with the state that holds at its end, so a quick reconnect is silent.
Users nobody watches cost a dict lookup per connect and disconnect, nothing more."""
import dataclasses

from .. import proto as P
from ..store import now_ms


@dataclasses.dataclass(frozen=True, slots=True)
class SetSeen:
    """Write op: the user was last online at ms."""
    user: str
    ms: int

    def __call__(self, w):
        w.set_seen(self.user, self.ms)


class Presence:
    def __init__(self, router, writer, loop, grace):
        self.router = router
        self.writer = writer
        self.loop = loop
        self.grace = grace
        self.announced = {}   # watched user -> state the watchers were last told
        self.seen = {}        # user -> ms last online, for users gone offline since start
        self._timers = {}

    def went_online(self, user):
        self._changed(user)

    def went_offline(self, user):
        ts = self.seen[user] = now_ms()
        try:
            self.writer.submit(SetSeen(user, ts), lambda r, e: None)
        except RuntimeError:
            pass   # shutting down; the in-memory value served until now
        self._changed(user)

    def _changed(self, user):
        if not self.router.watched(user):
            self.announced.pop(user, None)
            return
        if user not in self._timers:
            self._timers[user] = self.loop.call_later(self.grace, self._flush, user)

    def _flush(self, user):
        del self._timers[user]
        if not self.router.watched(user):
            self.announced.pop(user, None)
            return
        now = self.state(user, None)
        if self.announced.get(user) != now["state"]:
            self.announced[user] = now["state"]
            self.router.to_watchers(user, P.event("presence", **now))

    def state(self, user, r):
        """{user, state, last_seen}; r (a store Reader) is read for users not seen since start."""
        if self.router.online(user):
            return {"user": user, "state": "online", "last_seen": now_ms()}
        seen = self.seen.get(user)
        if seen is None and r is not None:
            seen = r.last_seen(user)
        return {"user": user, "state": "offline", "last_seen": seen or 0}

    def watch(self, conn, users, r):
        """Watches users; each is reported as the other watchers see it, so that a
        change still inside its grace window reaches this watcher too when it ends."""
        out = []
        for u in users:
            st = self.state(u, r)
            told = self.announced.setdefault(u, st["state"])
            if told != st["state"]:
                st = {"user": u, "state": told,
                      "last_seen": now_ms() if told == "online" else st["last_seen"]}
            self.router.watch(conn, u)
            out.append(st)
        return out

    def unwatch(self, conn, users):
        for u in users:
            self.router.unwatch(conn, u)
            if not self.router.watched(u):
                self.announced.pop(u, None)
