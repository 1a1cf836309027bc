"""Presence as watchers see it. A user is online while one authenticated connection
of theirs is alive; changes are announced to watching connections after a grace
window, with the state that holds at its end, so a quick reconnect is silent.
Users nobody watches cost a dict lookup per connect and disconnect, nothing more.
The watch and unwatch ops are here too; a connection's watches are in its Session."""
import dataclasses

from .. import proto as P
from ..proto import ProtocolError
from ..store import now_ms
from . import rules
from .session import session


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


class Watching:
    """The watch and unwatch ops: one may watch only users one shares a conversation with."""

    def __init__(self, ctx, presence):
        self.ctx = ctx
        self.presence = presence

    def handlers(self):
        return {"watch": self.watch, "unwatch": self.unwatch}

    def watch(self, conn, req):
        user = conn.user
        with self.ctx.store.read() as r:
            for u in req.users:
                if u != user and not rules.shares_conv(r, user, u):
                    raise ProtocolError(req.rid, P.FORBIDDEN, f"no conversation shared with {u}")
            states = self.presence.watch(conn, req.users, r)
        session(conn).watching.update(req.users)
        self.ctx.reply(conn, req, {"presence": states})

    def unwatch(self, conn, req):
        watching = conn.extra.watching if conn.extra is not None else set()
        users = [u for u in req.users if u in watching]
        watching.difference_update(users)
        self.presence.unwatch(conn, users)
        self.ctx.reply(conn, req, {})

    def end_unshared(self, gone, members):
        """`gone` has left a group whose members are now `members`: a watch between gone and
        one of them ends now, both ways, unless the two still share another conversation.
        Only existing watches are looked at, never the whole group."""
        others = set(members)
        router = self.ctx.router
        pairs = [(c, gone) for c in router.watchers.get(gone, ()) if c.user in others]
        for c in router.conns_of(gone):
            if c.extra is not None:
                pairs += [(c, u) for u in c.extra.watching & others]
        if not pairs:
            return
        shared = {}
        with self.ctx.store.read() as r:
            for c, u in pairs:
                key = (c.user, u)
                if key not in shared:
                    shared[key] = rules.shares_conv(r, c.user, u)
                if not shared[key]:
                    c.extra.watching.discard(u)
                    self.presence.unwatch(c, [u])

    def closed(self, conn):
        """conn is gone: its watches end."""
        s = conn.extra
        if s is not None and s.watching:
            self.presence.unwatch(conn, s.watching)
            s.watching.clear()
