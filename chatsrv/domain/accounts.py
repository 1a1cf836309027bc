"""Accounts: sign-up, login, token auth and logout, and the write ops they need.

Write ops run in the writer thread with its WriteTxn (chatsrv/store); they touch only
their own fields and the transaction."""
import dataclasses

from ..store import Conv, User


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
