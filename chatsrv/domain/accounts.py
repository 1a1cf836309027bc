"""Accounts: sign-up, login, token auth, logout and password change, and the write ops
they need. Handlers run on the loop (argon2 off it, in `Passwords`); write ops run in
the writer thread with its WriteTxn (chatsrv/store) and touch only their own fields
and the transaction."""
import dataclasses
import logging

from .. import proto as P
from ..proto import ProtocolError
from ..store import Conv, Unavailable, User
from .errors import UNAVAILABLE

log = logging.getLogger("chatsrv.accounts")

CLOSE_POLICY = 1008


class Accounts:
    """The account ops. `run(conn, req, coro, exclusive)` runs an op that awaits (the
    hub's, so that a login holds back the connection's later requests);
    `authenticated(conn, req, user, device, cursor, reply)` is what follows a good login
    or auth."""

    def __init__(self, ctx, passwords, tokens, throttle_user, throttle_addr, run, authenticated):
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.store = ctx.store
        self.passwords = passwords
        self.tokens = tokens
        self.throttle_user = throttle_user
        self.throttle_addr = throttle_addr
        self.run = run
        self.authenticated = authenticated
        self.hashing = 0      # password hashes queued or running (bounded: max_pending_hashes)

    def handlers(self):
        return {"signup": self.signup, "login": self.login, "auth": self.auth, "logout": self.logout,
                "password_change": self.password_change}

    def _admit_hash(self, rid):
        """Reserves a place among the pending hashes now, in the same step as the check, so
        that simultaneous requests cannot all pass it; `_hashed` frees it."""
        if self.hashing >= self.cfg.max_pending_hashes:
            raise ProtocolError(rid, P.RATE_LIMITED, "server is busy; try again")
        self.hashing += 1

    async def _write(self, req, op):
        try:
            return await self.ctx.written(op)
        except Unavailable:
            raise ProtocolError(req.rid, P.UNAVAILABLE, UNAVAILABLE) from None

    def signup(self, conn, req):
        if not self.cfg.signup:
            raise ProtocolError(req.rid, P.FORBIDDEN, "sign-up is closed on this server")
        with self.store.read() as r:
            if r.user(req.user) is not None:
                raise ProtocolError(req.rid, P.CONFLICT, "user name is taken")
        self._admit_hash(req.rid)
        self.run(conn, req, self._signup(conn, req))

    async def _signup(self, conn, req):
        try:
            h = await self.passwords.hash(req.password)
        finally:
            self.hashing -= 1
        if not await self._write(req, CreateUser(req.user, h)):
            raise ProtocolError(req.rid, P.CONFLICT, "user name is taken")
        log.info("signup user=%s addr=%s", req.user, conn.addr)
        self.ctx.reply(conn, req, {"user": req.user})

    def login(self, conn, req):
        if conn.authed:
            raise ProtocolError(req.rid, P.BAD_REQUEST, "this connection is already authenticated")
        if self.throttle_user.blocked(req.user) or self.throttle_addr.blocked(conn.addr):
            raise ProtocolError(req.rid, P.RATE_LIMITED, "too many failed logins; try again later")
        self._admit_hash(req.rid)
        # counted as failures until the hash says otherwise (see Throttle)
        stamps = self.throttle_user.attempt(req.user), self.throttle_addr.attempt(conn.addr)
        self.run(conn, req, self._login(conn, req, stamps), exclusive=True)

    async def _login(self, conn, req, stamps):
        try:
            with self.store.read() as r:
                rec = r.user(req.user)
            good, rehash = await self.passwords.verify(rec.pw if rec and not rec.deleted else None, req.password)
        finally:
            self.hashing -= 1
        if not good:
            log.info("login failed user=%s addr=%s", req.user, conn.addr)
            raise ProtocolError(req.rid, P.UNAUTHORIZED, "wrong user name or password")
        self.throttle_user.forgive(req.user, stamps[0])
        self.throttle_addr.forgive(conn.addr, stamps[1])
        if rec.disabled:
            raise ProtocolError(req.rid, P.FORBIDDEN, "this account is disabled")
        if conn.closing:
            return
        token, selector, mac = self.tokens.new()
        if rehash:
            await self._write(req, SetPasswordHash(req.user, rehash))
        cursor = await self._write(req, AddToken(req.user, req.device, selector, mac))
        log.info("login user=%s device=%s addr=%s", req.user, req.device, conn.addr)
        self.authenticated(conn, req, req.user, req.device, cursor,
                           {"token": token, "user": req.user, "device": req.device})

    def auth(self, conn, req):
        if conn.authed:
            raise ProtocolError(req.rid, P.BAD_REQUEST, "this connection is already authenticated")
        selector = self.tokens.selector(req.token)
        with self.store.read() as r:
            found = r.token(selector) if selector is not None else None
            if found is None or not self.tokens.check(req.token, found.mac):
                raise ProtocolError(req.rid, P.UNAUTHORIZED, "invalid or revoked token")
            account = r.user(found.user)
            if account is None or account.disabled:
                raise ProtocolError(req.rid, P.FORBIDDEN, "this account is disabled")
            cursor = r.cursor(found.user, found.device)
        self.authenticated(conn, req, found.user, found.device, cursor or 0,
                           {"user": found.user, "device": found.device})

    def password_change(self, conn, req):
        if self.throttle_user.blocked(conn.user):
            raise ProtocolError(req.rid, P.RATE_LIMITED, "too many wrong passwords; try again later")
        self._admit_hash(req.rid)
        stamp = self.throttle_user.attempt(conn.user)    # a failure until the hash says otherwise
        self.run(conn, req, self._password_change(conn, req, stamp))

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
            self.hashing -= 1
        others = await self._write(req, ChangePassword(user, h, device if req.logout_others else None))
        log.info("password changed user=%s device=%s signed_out=%d", user, device, len(others))
        self.ctx.reply(conn, req, {})
        self._sign_out(user, set(others))

    def logout(self, conn, req):
        user, device = conn.user, conn.device

        def done(_):
            self.ctx.reply(conn, req, {})
            log.info("logout user=%s device=%s", user, device)
            self._sign_out(user, {device})

        self.ctx.write(conn, req, RevokeDevice(user, device), done)

    def _sign_out(self, user, devices):
        """Closes the connections of user's devices whose tokens were revoked."""
        for c in list(self.ctx.router.conns_of(user)):
            if c.device in devices:
                c.close(CLOSE_POLICY, "logged out")


# --- write ops



@dataclasses.dataclass(frozen=True, slots=True)
class CreateUser:
    """-> True, or False when the name is taken."""
    user: str
    pw_hash: str

    def __call__(self, w):
        return w.create_user(self.user, self.pw_hash)


@dataclasses.dataclass(frozen=True, slots=True)
class SetPasswordHash:
    user: str
    pw_hash: str

    def __call__(self, w):
        w.set_password_hash(self.user, self.pw_hash)


@dataclasses.dataclass(frozen=True, slots=True)
class AddToken:
    """Stores a device's token -> the device's inbox cursor. A device seen for the first
    time starts at the highest cursor of the user's other devices: a new device gets
    what is new from now on, not the account's whole past (history has that)."""
    user: str
    device: str
    selector: bytes
    mac: bytes

    def __call__(self, w):
        w.put_token(self.user, self.device, self.selector, self.mac)
        cursor = w.cursor(self.user, self.device)
        if cursor is not None:
            return cursor
        start = max(w.cursors(self.user), default=0)
        w.set_cursor(self.user, self.device, start)
        return start


@dataclasses.dataclass(frozen=True, slots=True)
class RevokeDevice:
    """Deletes every token of the device -> their selectors."""
    user: str
    device: str

    def __call__(self, w):
        selectors = w.device_tokens(self.user, self.device)
        for sel in selectors:
            w.delete_token(self.user, self.device, sel)
        return selectors


@dataclasses.dataclass(frozen=True, slots=True)
class ChangePassword:
    """A new password hash; with `keep`, every other device of the user is signed out
    (its tokens revoked) -> the devices signed out."""
    user: str
    pw_hash: str
    keep: str = None

    def __call__(self, w):
        w.set_password_hash(self.user, self.pw_hash)
        if self.keep is None:
            return []
        others = [d for d in w.devices(self.user) if d != self.keep]
        for d in others:
            RevokeDevice(self.user, d)(w)
        return others


@dataclasses.dataclass(frozen=True, slots=True)
class SetDeviceSeen:
    """The end of a device's connection (what `chatsrv sessions` shows as last seen)."""
    user: str
    device: str
    ms: int

    def __call__(self, w):
        w.set_device_seen(self.user, self.device, self.ms)


@dataclasses.dataclass(frozen=True, slots=True)
class SetDisabled:
    """Disables or enables an account -> False when there is no such account."""
    user: str
    disabled: bool

    def __call__(self, w):
        u = w.user(self.user)
        if u is None or u.deleted:
            return False
        w.put_user(self.user, User(u.pw, u.ts, self.disabled))
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteAccount:
    """Deletes an account's credentials, tokens, devices, inbox, memberships, push
    subscriptions and mutes; it leaves every group it was in (ownership passes to the
    longest-standing member) and its direct conversations (no one can send into those any
more; the peer keeps reading them). The messages it sent stay in
    their conversations, under its name, which stays taken (a tombstone) so that nobody
    else can sign up as it and read them. -> {"devices", "groups", "direct"} or None
    when there is no such account."""
    user: str

    def __call__(self, w):
        u = w.user(self.user)
        if u is None or u.deleted:
            return None
        out = {"devices": w.devices(self.user), "groups": 0, "direct": 0}
        for conv, _ in w.memberships(self.user):
            c = w.conv(conv)
            if c is None or self.user not in c.members:
                continue
            # a direct conversation keeps no member: nobody can send into it any more, and the
            # peer still reads it through its own membership
            after = [m for m in c.members if m != self.user] if c.kind == "group" else []
            owner = c.owner if c.owner != self.user else (after[0] if after else None)
            w.put_conv(conv, Conv(c.kind, after, c.name, owner, c.ts))
            out["groups" if c.kind == "group" else "direct"] += 1
        w.delete_user_rows(self.user)
        w.put_user(self.user, User("", u.ts, disabled=True, deleted=True))
        return out
