"""Push subscriptions and mutes: the ops push_key, push_subscribe, push_unsubscribe and
mute, and their write ops. The sending of pushes is chatsrv/push."""
import dataclasses

from .. import proto as P
from ..proto import ProtocolError
from ..store import PushSub, now_ms
from . import rules


class PushSubs:
    """`public_key` is the Web Push application server key clients subscribe with."""

    def __init__(self, ctx, public_key):
        self.ctx = ctx
        self.public_key = public_key

    def handlers(self):
        return {"push_key": self.push_key, "push_subscribe": self.push_subscribe,
                "push_unsubscribe": self.push_unsubscribe, "mute": self.mute}

    def _done(self, conn, req):
        return lambda _: self.ctx.reply(conn, req, {})

    def push_key(self, conn, req):
        self.ctx.reply(conn, req, {"key": self.public_key})

    def push_subscribe(self, conn, req):
        why = P.push_endpoint_policy(req.endpoint, self.ctx.cfg.push_allow_http)
        if why is not None:
            raise ProtocolError(req.rid, P.BAD_REQUEST, why)
        self.ctx.write(conn, req, PutPushSub(conn.user, conn.device, req.endpoint, req.keys), self._done(conn, req))

    def push_unsubscribe(self, conn, req):
        self.ctx.write(conn, req, DeletePushSub(conn.user, conn.device), self._done(conn, req))

    def mute(self, conn, req):
        with self.ctx.store.read() as r:
            rules.active(r.membership(conn.user, req.conv))
        self.ctx.write(conn, req, SetMute(conn.user, req.conv, req.until), self._done(conn, req))


# --- write ops


@dataclasses.dataclass(frozen=True, slots=True)
class PutPushSub:
    """The device's subscription (one per device: a new one replaces the old)."""
    user: str
    device: str
    endpoint: str
    keys: dict

    def __call__(self, w):
        w.put_push_subscription(self.user, self.device,
                                PushSub(self.endpoint, self.keys["p256dh"], self.keys["auth"], now_ms()))


@dataclasses.dataclass(frozen=True, slots=True)
class DeletePushSub:
    """Deletes the device's subscription; with `endpoint`, only if it is still that one
    (a newer subscription that replaced it stays) -> True if one was deleted."""
    user: str
    device: str
    endpoint: str = None

    def __call__(self, w):
        if self.endpoint is not None:
            sub = w.push_subscription(self.user, self.device)
            if sub is None or sub.endpoint != self.endpoint:
                return False
        return w.delete_push_subscription(self.user, self.device)


@dataclasses.dataclass(frozen=True, slots=True)
class SetMute:
    """No pushes for conv until `until` (ms since the epoch); 0 unmutes."""
    user: str
    conv: str
    until: int

    def __call__(self, w):
        w.set_mute(self.user, self.conv, self.until)
