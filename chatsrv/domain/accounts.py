"""Accounts: sign-up, login, token auth and logout, and the write ops they need.

Write ops run in the writer thread with its WriteTxn (chatsrv/store); they touch only
their own fields and the transaction."""
import dataclasses


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
