"""The hub: what each op does. It runs once per request on the loop thread, turning
a parsed request into reads, writer jobs and events, and never loops over
recipients itself (the router does that in Cython)."""
import asyncio
import collections
import logging
import time

import orjson

from . import _core, convid
from . import proto as P
from .domain import errors
from .domain.accounts import AddToken, ChangePassword, CreateUser, RevokeDevice, SetPasswordHash
from .domain.groups import ChangeGroup, CreateGroup
from .domain.messages import Ack, MarkRead
from .domain.presence import Presence
from .domain.pushsubs import DeletePushSub, PutPushSub, SetMute
from .metrics import Hist
from .proto import ProtocolError
from .store import AppendMessage, Unavailable, now_ms

log = logging.getLogger("chatsrv.hub")

CONVS_RECENT = 2000     # inbox entries scanned to order `convs` exactly
REPLAY_CHUNK = 512      # backlog messages sent per loop iteration, so replay never stalls others
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001


class Session:
    """Hub-side state of a connection that needs any (kept in Conn.extra, made on first
    use: most connections never log in twice or watch anyone, and idle memory counts)."""

    __slots__ = ("pending", "busy", "watching")

    def __init__(self):
        self.pending = []   # requests that arrived while login/auth was in flight
        self.busy = False
        self.watching = set()


class Hub:
    def __init__(self, cfg, store, writer, router, passwords, tokens, throttle_user, throttle_addr):
        self.cfg = cfg
        self.store = store
        self.writer = writer
        self.router = router
        self.passwords = passwords
        self.tokens = tokens
        self.throttle_user = throttle_user
        self.throttle_addr = throttle_addr
        self.parser = P.Parser(cfg.max_message_bytes)
        self.conns = set()
        self.trusted_proxies = frozenset(cfg.trusted_proxy)
        self.loop = asyncio.get_event_loop()
        self._hashing = 0
        self.presence = Presence(router, writer, self.loop, cfg.presence_grace)
        self.send_latency = Hist()
        self.outcomes = collections.Counter()    # (op, "ok" or error code) -> replies
        self._typing = {}     # (user, conv) -> when the last typing event was forwarded
        self.handlers = {
            "signup": self.signup, "login": self.login, "auth": self.auth, "send": self.send,
            "ack": self.ack, "history": self.history, "convs": self.convs, "logout": self.logout,
            "group_create": self.group_create, "group_add": self.group_add, "group_remove": self.group_remove,
            "group_leave": self.group_leave, "group_rename": self.group_rename, "group_info": self.group_info,
            "watch": self.watch, "unwatch": self.unwatch, "typing": self.typing, "read": self.read,
            "settings": self.settings, "password_change": self.password_change,
        }

    # --- connection life

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
        if conn.authed and self.router.detach(conn):
            self.presence.went_offline(conn.user)
        s = conn.extra
        if s is not None and s.watching:
            self.presence.unwatch(conn, s.watching)
            s.watching.clear()

    def _auth_timeout(self, conn):
        conn.timer = None
        if not conn.authed:
            conn.close(CLOSE_POLICY, "authentication timeout")

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

    def _accept(self, conn, parse, frame):
        try:
            req = parse(frame)
        except ProtocolError as e:
            op = frame.get("op") if type(frame) is dict else None
            # a bounded label set: a known op, else "invalid" (never what a client made up)
            self.fail(conn, op if type(op) is str and op in P.OPS else "invalid", e.rid, e.code, e.msg)
            return
        s = conn.extra
        if s is not None and s.busy:
            # login/auth in flight: later requests wait for its outcome, in order
            s.pending.append(req)
            return
        self.dispatch(conn, req)

    def dispatch(self, conn, req):
        if req.needs_auth and not conn.authed:
            self.fail(conn, req.op, req.rid, P.UNAUTHORIZED, "authenticate first")
            return
        try:
            self.handlers[req.op](conn, req)
        except ProtocolError as e:
            self.fail(conn, req.op, req.rid, e.code, e.msg)
        except Exception:
            log.exception("op %s failed", req.op)
            self.fail(conn, req.op, req.rid, P.INTERNAL, "internal error")

    def _task(self, conn, req, coro, exclusive=False):
        """Runs an op that awaits (argon2); exclusive ones hold back the connection's later requests."""
        s = conn.extra
        if exclusive:
            if s is None:
                s = conn.extra = Session()
            s.busy = True

        async def run():
            try:
                await coro
            except ProtocolError as e:
                self.fail(conn, req.op, req.rid, e.code, e.msg)
            except Exception:
                log.exception("op %s failed", req.op)
                self.fail(conn, req.op, req.rid, P.INTERNAL, "internal error")
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

    def _write(self, conn, req, op, done):
        """Submits a writer job; done(result) runs after the commit. A failed write answers
        `unavailable` (map or disk full) or `internal`, and nothing acknowledged is lost."""

        def finish(result, error):
            if error is not None:
                self.write_failed(conn, req.rid, error, req.op)
                return
            try:
                done(result)
            except ProtocolError as e:
                self.fail(conn, req.op, req.rid, e.code, e.msg)

        try:
            self.writer.submit(op, finish)
        except RuntimeError:
            raise ProtocolError(req.rid, P.UNAVAILABLE, "server is shutting down")

    def write_failed(self, conn, rid, error, op="send"):
        e = errors.wire(rid, error)
        self.fail(conn, op, rid, e.code, e.msg)

    # --- replies: each request gets one, counted by op and outcome (chatsrv_ops_total);
    # the send fast path counts its oks in the core

    def reply(self, conn, req, data):
        self.outcomes[(req.op, "ok")] += 1
        conn.send(P.ok(req.rid, data))

    def fail(self, conn, op, rid, code, msg):
        self.outcomes[(op, code)] += 1
        conn.send(P.err(rid, code, msg))

    def _future_write(self, op):
        """A writer job as an awaitable, for ops that are coroutines."""
        fut = self.loop.create_future()

        def finish(result, error):
            if not fut.done():
                fut.set_exception(error) if error is not None else fut.set_result(result)

        self.writer.submit(op, finish)
        return fut

    # --- accounts

    def signup(self, conn, req):
        if not self.cfg.signup:
            raise ProtocolError(req.rid, P.FORBIDDEN, "sign-up is closed on this server")
        with self.store.read() as r:
            if r.user(req.user) is not None:
                raise ProtocolError(req.rid, P.CONFLICT, "user name is taken")
        self._admit_hash(req)
        self._task(conn, req, self._signup(conn, req))

    def _admit_hash(self, req):
        """Reserves a place among the pending hashes now, in the same step as the check, so that
        simultaneous requests cannot all pass it; the coroutine that hashes frees it."""
        if self._hashing >= self.cfg.max_pending_hashes:
            raise ProtocolError(req.rid, P.RATE_LIMITED, "server is busy; try again")
        self._hashing += 1

    async def _signup(self, conn, req):
        try:
            h = await self.passwords.hash(req.password)
        finally:
            self._hashing -= 1
        try:
            created = await self._future_write(CreateUser(req.user, h))
        except Unavailable:
            raise ProtocolError(req.rid, P.UNAVAILABLE, "storage is full or failing; try again later")
        if not created:
            raise ProtocolError(req.rid, P.CONFLICT, "user name is taken")
        log.info("signup user=%s addr=%s", req.user, conn.addr)
        self.reply(conn, req, {"user": req.user})

    def login(self, conn, req):
        if conn.authed:
            raise ProtocolError(req.rid, P.BAD_REQUEST, "this connection is already authenticated")
        if self.throttle_user.blocked(req.user) or self.throttle_addr.blocked(conn.addr):
            raise ProtocolError(req.rid, P.RATE_LIMITED, "too many failed logins; try again later")
        self._admit_hash(req)
        # counted as failures until the hash says otherwise (see Throttle)
        stamps = self.throttle_user.attempt(req.user), self.throttle_addr.attempt(conn.addr)
        self._task(conn, req, self._login(conn, req, stamps), exclusive=True)

    async def _login(self, conn, req, stamps):
        try:
            with self.store.read() as r:
                rec = r.user(req.user)
            good, rehash = await self.passwords.verify(rec.pw if rec else None, req.password)
        finally:
            self._hashing -= 1
        if not good:
            log.info("login failed user=%s addr=%s", req.user, conn.addr)
            raise ProtocolError(req.rid, P.UNAUTHORIZED, "wrong user name or password")
        self.throttle_user.forgive(req.user, stamps[0])
        self.throttle_addr.forgive(conn.addr, stamps[1])
        if conn.closing:
            return
        token, selector, mac = self.tokens.new()
        try:
            if rehash:
                await self._future_write(SetPasswordHash(req.user, rehash))
            cursor = await self._future_write(AddToken(req.user, req.device, selector, mac))
        except Unavailable:
            raise ProtocolError(req.rid, P.UNAVAILABLE, "storage is full or failing; try again later")
        log.info("login user=%s device=%s addr=%s", req.user, req.device, conn.addr)
        self._authenticated(conn, req, req.user, req.device, cursor,
                            {"token": token, "user": req.user, "device": req.device})

    def auth(self, conn, req):
        if conn.authed:
            raise ProtocolError(req.rid, P.BAD_REQUEST, "this connection is already authenticated")
        selector = self.tokens.selector(req.token)
        with self.store.read() as r:
            found = r.token(selector) if selector is not None else None
            if found is None or not self.tokens.check(req.token, found.mac):
                raise ProtocolError(req.rid, P.UNAUTHORIZED, "invalid or revoked token")
            user, device = found.user, found.device
            cursor = r.cursor(user, device)
        if cursor is None:
            cursor = 0
        self._authenticated(conn, req, user, device, cursor, {"user": user, "device": device})

    def _authenticated(self, conn, req, user, device, cursor, reply):
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
        self.reply(conn, req, reply)
        self._replay(conn)

    def _replay(self, conn):
        """Sends the device's backlog in chunks, then `synced`; live fan-out waits until then."""
        if conn.closing:
            return
        if conn.paused:
            conn.resume_cb = lambda: self._replay(conn)
            return
        with self.store.read() as r:
            positions, records = r.inbox_after(conn.user, conn.last_sent, REPLAY_CHUNK)
            _core.replay(conn, positions, records)
            if len(positions) == REPLAY_CHUNK:
                self.loop.call_soon(self._replay, conn)
                return
            head = r.inbox_head(conn.user)
        conn.replaying = False
        conn.send(P.event("synced", inbox=head))

    def client_settings(self):
        """What a client needs to know before it connects (also served as GET /settings)."""
        cfg = self.cfg
        return {"version": 1, "signup": cfg.signup, "push": self.push is not None and self.push.enabled,
                "max_message_bytes": cfg.max_message_bytes, "max_frame_bytes": cfg.max_frame_bytes,
                "max_group_members": cfg.max_group_members, "history_limit": P.HISTORY_MAX,
                "typing_interval": cfg.typing_interval}

    def settings(self, conn, req):
        self.reply(conn, req, self.client_settings())

    def password_change(self, conn, req):
        if self.throttle_user.blocked(conn.user):
            raise ProtocolError(req.rid, P.RATE_LIMITED, "too many wrong passwords; try again later")
        self._admit_hash(req)
        stamp = self.throttle_user.attempt(conn.user)    # a failure until the hash says otherwise
        self._task(conn, req, self._password_change(conn, req, stamp))

    async def _password_change(self, conn, req, stamp):
        user, device = conn.user, conn.device
        try:
            with self.store.read() as r:
                rec = r.user(user)
            good, _ = await self.passwords.verify(rec.pw if rec else None, req.old)
            if not good:
                log.info("password change refused user=%s addr=%s", user, conn.addr)
                # not `unauthorized`: that tells a client its token is gone
                raise ProtocolError(req.rid, P.FORBIDDEN, "the current password is wrong")
            self.throttle_user.forgive(user, stamp)
            h = await self.passwords.hash(req.new)
        finally:
            self._hashing -= 1
        try:
            others = await self._future_write(ChangePassword(user, h, device if req.logout_others else None))
        except Unavailable:
            raise ProtocolError(req.rid, P.UNAVAILABLE, "storage is full or failing; try again later")
        log.info("password changed user=%s device=%s signed_out=%d", user, device, len(others))
        self.reply(conn, req, {})
        gone = set(others)
        for c in list(self.router.conns_of(user)):
            if c.device in gone:
                c.close(CLOSE_POLICY, "logged out")

    def logout(self, conn, req):
        user, device = conn.user, conn.device

        def done(_):
            self.reply(conn, req, {})
            log.info("logout user=%s device=%s", user, device)
            for c in list(self.router.conns_of(user)):
                if c.device == device:
                    c.close(CLOSE_POLICY, "logged out")

        self._write(conn, req, RevokeDevice(user, device), done)

    # --- messages

    def _members(self, conv):
        members = self.router.members.get(conv)
        if members is None:
            with self.store.read() as r:
                members = r.members(conv)
            if members is None:
                return None
            self.router.members[conv] = members
        return members

    def send(self, conn, req):
        user = conn.user
        new_conv = None
        if req.to is not None:
            if req.to == user:
                raise ProtocolError(req.rid, P.BAD_REQUEST, "cannot send to yourself")
            conv = convid.direct(user, req.to)
            if self._members(conv) is None:
                with self.store.read() as r:
                    if r.user(req.to) is None:
                        raise ProtocolError(req.rid, P.NOT_FOUND, "no such user")
                new_conv = tuple(sorted((user, req.to)))
        else:
            conv = req.conv
            # an early answer; the writer checks again against what is committed
            members = self._members(conv)
            if members is None or user not in members:
                raise ProtocolError(req.rid, P.FORBIDDEN, "not a member of this conversation")
        # the common case (a known conversation) never gets here: the core's Sender takes it
        try:
            self.writer.submit(AppendMessage(user, conv, req.body, req.cid, new_conv),
                               _core.SendDone(conn, req.rid, self))
        except RuntimeError:
            raise ProtocolError(req.rid, P.UNAVAILABLE, "server is shutting down")

    def _deliver(self, result, exclude, members_after=None):
        self.router.fanout(result, exclude, members_after)

    def ack(self, conn, req):
        user, device = conn.user, conn.device
        with self.store.read() as r:
            head = r.inbox_head(user)
        if req.upto > head:
            raise ProtocolError(req.rid, P.BAD_REQUEST, f"upto is past the inbox head ({head})")

        def done(result):
            self.reply(conn, req, {})
            for conv, seq in result.delivered:
                self.router.broadcast((convid.peer(conv, user),),
                                      P.event("delivered", conv=conv, user=user, seq=seq))

        self._write(conn, req, Ack(user, device, req.upto), done)

    def read(self, conn, req):
        user, conv, seq = conn.user, req.conv, req.seq

        def done(result):
            self.reply(conn, req, {})
            if result.moved:
                self.router.broadcast(result.members, P.event("read", conv=conv, user=user, seq=result.seq))
                self.on_read(conn, conv, result.seq)

        self._write(conn, req, MarkRead(user, conv, seq), done)

    def on_read(self, conn, conv, seq):
        """Called when conn's user has read conv up to seq: other devices' notifications are cleared."""
        if self.push is not None:
            self.push.on_read(conn.user, conn.device, conv, seq)

    @staticmethod
    def _membership(r, user, conv, rid):
        m = r.membership(user, conv)
        if m is None or not m.active:
            raise errors.not_member(rid)
        return m

    def history(self, conn, req):
        with self.store.read() as r:
            before = req.before
            m = r.membership(conn.user, req.conv) if req.include_left else None
            if m is not None and not m.active:
                # a former member reads what was theirs: up to the message of their departure
                before = min(before, m.left + 1) if before is not None else m.left + 1
            else:
                m = self._membership(r, conn.user, req.conv, req.rid)
            records = r.history(req.conv, before, req.limit, since=m.joined)
        self.outcomes[(req.op, "ok")] += 1
        conn.send(P.history_reply(req.rid, records))

    def convs(self, conn, req):
        user = conn.user
        out = []
        with self.store.read() as r:
            # Recency is exact by inbox position for conversations active in the newest
            # entries (timestamps tie within a millisecond); older ones go by timestamp.
            head = r.inbox_head(user)
            recent = r.inbox_span(user, max(0, head - CONVS_RECENT), head, False)
            now = now_ms()
            for conv, m in r.memberships(user):
                left = m.left
                if left and not req.include_left:
                    continue
                rec = r.conv(conv)
                if left:
                    last_seq, last = left, r.message(conv, left)
                else:
                    last_seq, last = r.last_message(conv)
                read = r.read_seq(user, conv)
                item = {"conv": conv, "kind": rec.kind}
                last_obj = orjson.loads(b"{" + last) if last is not None else None
                if rec.kind == "direct":
                    item["peer"] = next((u for u in rec.members if u != user), user)
                elif left:
                    # the name they knew: renames after their departure are not theirs to see
                    item["name"] = (last_obj or {}).get("sys", {}).get("name") or rec.name
                    item["left"] = left
                else:
                    item["name"] = rec.name
                item.update(last_seq=last_seq, read_seq=min(read, last_seq), unread=max(0, last_seq - read),
                            last=last_obj)
                muted = r.muted_until(user, conv)
                if muted > now:
                    item["muted_until"] = muted
                pos = recent.get(conv, (0, 0))[1]
                out.append(((pos, last_obj["ts"] if last_obj else rec.ts), item))
        out.sort(key=lambda p: p[0], reverse=True)
        self.reply(conn, req, {"convs": [item for _, item in out]})

    # --- groups

    def group_create(self, conn, req):
        user, cap = conn.user, self.cfg.max_group_members
        if len(set(req.members) | {user}) > cap:
            raise ProtocolError(req.rid, P.TOO_LARGE, f"a group has at most {cap} members")
        conv = convid.new_group()

        def done(result):
            self._deliver(result.message, None, result.members)
            self.reply(conn, req, {"conv": conv})

        self._write(conn, req, CreateGroup(conv, user, req.name, req.members, cap), done)

    def _group_change(self, conn, req, action, users=(), name=None):
        user, cap = conn.user, self.cfg.max_group_members

        def done(result):
            if result is not None:
                self._deliver(result.message, None, members_after=result.members)
                if action in ("remove", "leave"):
                    self._end_unshared_watches(users[0] if action == "remove" else user, result.members)
            self.reply(conn, req, {})

        self._write(conn, req, ChangeGroup(req.conv, user, action, tuple(users), name, cap), done)

    def group_add(self, conn, req):
        self._group_change(conn, req, "add", req.users)

    def group_remove(self, conn, req):
        self._group_change(conn, req, "remove", [req.user])

    def group_leave(self, conn, req):
        self._group_change(conn, req, "leave")

    def group_rename(self, conn, req):
        self._group_change(conn, req, "rename", name=req.name)

    def group_info(self, conn, req):
        with self.store.read() as r:
            rec = r.conv(req.conv)
        if rec is None or conn.user not in rec.members:
            raise errors.not_member(req.rid)
        if rec.kind != "group":
            raise ProtocolError(req.rid, P.BAD_REQUEST, "not a group")
        self.reply(conn, req, {"conv": req.conv, "name": rec.name, "owner": rec.owner,
                              "members": rec.members})

    # --- presence and typing

    def watch(self, conn, req):
        user = conn.user
        with self.store.read() as r:
            for u in req.users:
                if u != user and not shares_conv(r, user, u):
                    raise ProtocolError(req.rid, P.FORBIDDEN, f"no conversation shared with {u}")
            states = self.presence.watch(conn, req.users, r)
        if conn.extra is None:
            conn.extra = Session()
        conn.extra.watching.update(req.users)
        self.reply(conn, req, {"presence": states})

    def _end_unshared_watches(self, gone, members):
        """`gone` has left a group whose members are now `members`: a watch between gone and
        one of them ends now, both ways, unless the two still share another conversation.
        Only existing watches are looked at, never the whole group."""
        others = set(members)
        pairs = [(c, gone) for c in self.router.watchers.get(gone, ()) if c.user in others]
        for c in self.router.conns_of(gone):
            if c.extra is not None:
                pairs += [(c, u) for u in c.extra.watching & others]
        if not pairs:
            return
        shared = {}
        with self.store.read() as r:
            for c, u in pairs:
                key = (c.user, u)
                if key not in shared:
                    shared[key] = shares_conv(r, c.user, u)
                if not shared[key]:
                    c.extra.watching.discard(u)
                    self.presence.unwatch(c, [u])

    def unwatch(self, conn, req):
        watching = conn.extra.watching if conn.extra is not None else set()
        users = [u for u in req.users if u in watching]
        watching.difference_update(users)
        self.presence.unwatch(conn, users)
        self.reply(conn, req, {})

    def typing(self, conn, req):
        user, conv = conn.user, req.conv
        members = self._members(conv)
        if members is None or user not in members:
            raise ProtocolError(req.rid, P.FORBIDDEN, "not a member of this conversation")
        self.reply(conn, req, {})
        now = time.monotonic()
        key = (user, conv)
        last = self._typing.get(key)
        if last is not None and now - last < self.cfg.typing_interval:
            return
        if len(self._typing) > 100_000:
            cutoff = now - self.cfg.typing_interval
            self._typing = {k: t for k, t in self._typing.items() if t > cutoff}
        self._typing[key] = now
        self.router.broadcast(members, P.event("typing", conv=conv, user=user), None, user)

    # --- shutdown

    def close_all(self, code=CLOSE_GOING_AWAY, reason="server shutting down"):
        for c in list(self.conns):
            c.close(code, reason)

    # --- push notifications (the sending side is chatsrv/push.py)

    push = None

    def attach_push(self, push):
        self.push = push
        self.handlers.update(push_key=self.push_key, push_subscribe=self.push_subscribe,
                             push_unsubscribe=self.push_unsubscribe, mute=self.mute)

    def push_key(self, conn, req):
        self.reply(conn, req, {"key": self.push.public_key})

    def push_subscribe(self, conn, req):
        why = P.push_endpoint_policy(req.endpoint, self.cfg.push_allow_http)
        if why is not None:
            raise ProtocolError(req.rid, P.BAD_REQUEST, why)
        self._write(conn, req, PutPushSub(conn.user, conn.device, req.endpoint, req.keys),
                    lambda _: self.reply(conn, req, {}))

    def push_unsubscribe(self, conn, req):
        self._write(conn, req, DeletePushSub(conn.user, conn.device), lambda _: self.reply(conn, req, {}))

    def mute(self, conn, req):
        with self.store.read() as r:
            self._membership(r, conn.user, req.conv, req.rid)
        self._write(conn, req, SetMute(conn.user, req.conv, req.until), lambda _: self.reply(conn, req, {}))


def shares_conv(r, user, other):
    """True if the two users are members of one conversation (reader r)."""
    m = r.membership(user, convid.direct(user, other))
    if m is not None:
        return True
    for conv, m in r.memberships(user):
        if m.active and convid.is_group(conv):
            o = r.membership(other, conv)
            if o is not None and o.active:
                return True
    return False
