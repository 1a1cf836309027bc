"""Typing indicators: forwarded to the conversation's other members' connections, at
most once per `typing_interval` per user and conversation; never stored."""
import time

from .. import proto as P
from . import rules

MAX_TRACKED = 100_000     # (user, conv) pairs remembered before the expired ones are dropped


class Typing:
    def __init__(self, ctx):
        self.ctx = ctx
        self._last = {}     # (user, conv) -> when the last typing event was forwarded

    def handlers(self):
        return {"typing": self.typing}

    def typing(self, conn, req):
        user, conv = conn.user, req.conv
        members = self.ctx.members(conv)
        rules.member(members, user)
        self.ctx.reply(conn, req, {})
        interval = self.ctx.cfg.typing_interval
        now = time.monotonic()
        key = (user, conv)
        last = self._last.get(key)
        if last is not None and now - last < interval:
            return
        if len(self._last) > MAX_TRACKED:
            cutoff = now - interval
            self._last = {k: t for k, t in self._last.items() if t > cutoff}
        self._last[key] = now
        self.ctx.router.broadcast(members, P.event("typing", conv=conv, user=user), None, user)
