"""The hub: the domain's entrance from the core. It owns the life of a connection as
the domain sees it (auth timeout, login, presence on connect and disconnect), parses
each request the core hands over and dispatches it, once, to the handler of its
concept (accounts, messages, groups, presence, typing, push subscriptions). It never
loops over recipients (the router does, in C) and never touches LMDB or a socket."""
import logging

import orjson

from .. import proto as P
from ..metrics import Hist
from ..proto import ProtocolError
from ..store import Refusal, now_ms
from .accounts import Accounts, SetDeviceSeen
from .context import Context
from .groups import Groups
from .messages import Messages
from .presence import Presence, Watching
from .pushsubs import PushSubs
from .session import session
from .typing import Typing

log = logging.getLogger("chatsrv.hub")

CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001


class Hub:
    """`router` is the core's local delivery; `notifier` is told of committed messages
    and reads (chatsrv/push); `send_done(conn, rid, hub)` and `replay_into(conn,
    positions, records)` are the core's compiled end of a send and backlog writer."""

    def __init__(self, cfg, store, writer, router, loop, notifier, passwords, tokens, throttle_user, throttle_addr,
                 send_done, replay_into):
        self.cfg = cfg
        self.router = router
        self.loop = loop
        self.parser = P.Parser(cfg.max_message_bytes)
        self.conns = set()
        self.trusted_proxies = frozenset(cfg.trusted_proxy)
        self.send_latency = Hist()      # from a send request to its ok (read by the core's SendDone)
        self.notifier = notifier
        self.ctx = ctx = Context(cfg, store, writer, router, loop, notifier)
        self.outcomes = ctx.outcomes    # replies by (op, outcome), read by the metrics
        self.presence = Presence(router, writer, loop, cfg.presence_grace)
        self.accounts = Accounts(ctx, passwords, tokens, throttle_user, throttle_addr, self._run,
                                 self._authenticated)
        self.messages = Messages(ctx, lambda conn, rid: send_done(conn, rid, self), replay_into, notifier)
        self.watching = Watching(ctx, self.presence)
        self.handlers = {"settings": self.settings}
        for part in (self.accounts, self.messages, Groups(ctx, self.watching.end_unshared), self.watching, Typing(ctx),
                     PushSubs(ctx, notifier.public_key)):
            self.handlers.update(part.handlers())

    # --- connection life (called by the core)

    def on_open(self, conn):
        peer = conn.transport.underlying_transport.get_extra_info("peername")
        conn.addr = peer[0] if peer else "?"
        if conn.forwarded and conn.addr in self.trusted_proxies:
            # the proxy appends the address it saw: the last entry is the one to trust
            conn.addr = conn.forwarded.rsplit(",", 1)[-1].strip() or conn.addr
        conn.forwarded = None
        conn.timer = self.loop.call_later(self.cfg.auth_timeout, self._auth_timeout, conn)
        self.conns.add(conn)

    def on_close(self, conn):
        self.conns.discard(conn)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.authed:
            # what `chatsrv sessions` shows as the device's last seen
            self.ctx.write_quietly(SetDeviceSeen(conn.user, conn.device, now_ms()))
            if self.router.detach(conn):
                self.presence.went_offline(conn.user)
        self.watching.closed(conn)

    def _auth_timeout(self, conn):
        conn.timer = None
        if not conn.authed:
            conn.close(CLOSE_POLICY, "authentication timeout")

    def _authenticated(self, conn, req, user, device, cursor, reply):
        """A good login or auth: the connection joins its user's, then gets its backlog."""
        if conn.closing:
            return
        conn.user = user
        conn.device = device
        conn.authed = True
        conn.replaying = True
        conn.last_sent = cursor
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if self.router.attach(conn):
            self.presence.went_online(user)
        self.ctx.reply(conn, req, reply)
        self.messages.replay(conn)

    def close_all(self, code=CLOSE_GOING_AWAY, reason="server shutting down"):
        for c in list(self.conns):
            c.close(code, reason)

    # --- requests (called by the core)

    def on_limited(self, conn, text):
        try:
            rid = orjson.loads(text).get("id")
        except Exception:
            rid = None
        conn.send(P.err(rid if type(rid) in (int, str) else None, P.RATE_LIMITED, "too many requests"))

    def on_request(self, conn, text):
        """A text frame that is not valid JSON (the core decodes the others)."""
        self._accept(conn, self.parser.parse, text)

    def on_object(self, conn, obj):
        """A frame the core has decoded (and not taken on its send path)."""
        self._accept(conn, self.parser.parse_obj, obj)

    def write_failed(self, conn, rid, error, op="send"):
        """A write that failed (the core's send path calls this for its sends)."""
        self.ctx.fail(conn, op, rid, error)

    def _accept(self, conn, parse, frame):
        try:
            req = parse(frame)
        except ProtocolError as e:
            op = frame.get("op") if type(frame) is dict else None
            # a bounded label set: a known op, else "invalid" (never what a client made up)
            self.ctx.fail(conn, op if type(op) is str and op in P.OPS else "invalid", e.rid, e)
            return
        s = conn.extra
        if s is not None and s.busy:
            # login/auth in flight: later requests wait for its outcome, in order
            s.pending.append(req)
            return
        self.dispatch(conn, req)

    def dispatch(self, conn, req):
        if req.needs_auth and not conn.authed:
            self.ctx.fail(conn, req.op, req.rid, ProtocolError(req.rid, P.UNAUTHORIZED, "authenticate first"))
            return
        try:
            self.handlers[req.op](conn, req)
        except Exception as e:
            self._failed(conn, req, e)

    def _failed(self, conn, req, e):
        if not isinstance(e, (ProtocolError, Refusal)):
            log.exception("op %s failed", req.op)
        self.ctx.fail(conn, req.op, req.rid, e)

    def _run(self, conn, req, coro, exclusive=False):
        """Runs an op that awaits (argon2); exclusive ones hold back the connection's later requests."""
        s = session(conn) if exclusive else None
        if exclusive:
            s.busy = True

        async def run():
            try:
                await coro
            except Exception as e:
                self._failed(conn, req, e)
            finally:
                if exclusive:
                    s.busy = False
                    pending, s.pending = s.pending, []
                    for r in pending:
                        if conn.closing:
                            break
                        if s.busy:
                            s.pending.append(r)
                        else:
                            self.dispatch(conn, r)

        self.loop.create_task(run())

    # --- server information

    def client_settings(self):
        """What a client needs to know before it connects (also served as GET /settings)."""
        cfg = self.cfg
        return {"version": 1, "signup": cfg.signup, "push": self.notifier.enabled,
                "max_message_bytes": cfg.max_message_bytes, "max_frame_bytes": cfg.max_frame_bytes,
                "max_group_members": cfg.max_group_members, "history_limit": P.HISTORY_MAX,
                "typing_interval": cfg.typing_interval}

    def settings(self, conn, req):
        self.ctx.reply(conn, req, self.client_settings())
