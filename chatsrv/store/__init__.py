"""The store: typed records, the reads and writes every adapter offers, and the one writer.

An adapter (`chatsrv.store.lmdb`, the server's; `chatsrv.store.memory`, for unit tests)
offers `read()`, a context manager giving a `Reader`, and `write()`, one giving a
`WriteTxn` (a Reader that also writes) inside which everything commits or nothing
does. Every write goes through `Writer`, the single writer with group commit.

A write op is a callable `op(w)` run in the writer thread with the batch's `WriteTxn`;
it returns a typed result and may raise a `Refusal` before it writes anything. The
ops themselves (what a login, an ack or a group change means) live in chatsrv/domain;
the store only offers records and primitives, and `AppendMessage`, the hot one.

The store never raises wire error codes and knows nothing of sockets: refusals are
typed (`NotMember`, ...) and the domain maps them to protocol errors. Only
chatsrv/store/lmdb knows how anything is laid out on disk.

Reader (every method also on WriteTxn, reading the transaction's own writes):
  user(name) -> User|None                  token(selector) -> Token|None
  conv(conv) -> Conv|None                  members(conv) -> [user]|None
  membership(user, conv) -> Membership|None
  memberships(user) -> [(conv, Membership)]  (every conversation ever joined, left ones too)
  last_seq(conv) -> int                    last_message(conv) -> (seq, record|None)
  message(conv, seq) -> record|None
  history(conv, before, limit, since=1) -> [record]  (since <= seq < before, newest `limit`, ascending)
  inbox_head(user) -> int                  inbox_after(user, after, n) -> ([pos], [record])
  inbox_span(user, after, upto, direct_only) -> {conv: (seq, pos)}  (newest entry per conv)
  cursor(user, device) -> int|None         cursors(user) -> [int]
  read_seq(user, conv) -> int              delivered(user, conv) -> int
  last_seen(user) -> int                   devices(user) -> [device]  (those with a token)
  device_seen(user, device) -> int  (ms its last connection ended, 0 if none)
  users() -> [(name, User)]  (every account, in name order)
  device_tokens(user, device) -> [selector]
  push_subscriptions(user) -> [(device, PushSub)]   push_subscription(user, device) -> PushSub|None
  muted_until(user, conv) -> int
WriteTxn:
  create_user(user, pw_hash) -> bool (False: taken)   set_password_hash(user, pw_hash)
  put_user(user, User)                     set_device_seen(user, device, ms)
  delete_user_rows(user)   (every row keyed by the user: tokens, devices, inbox, reads, cids,
                            memberships, push subscriptions, mutes; not the account, not messages)
  put_token(user, device, selector, mac)   delete_token(user, device, selector)
  set_cursor(user, device, pos)            set_read(user, conv, seq)
  set_delivered(user, conv, seq)           set_seen(user, ms)
  create_conv(conv, Conv) -> bool (False: exists)   put_conv(conv, Conv)
  set_membership(user, conv, Membership)
  append_message(user, conv, body, cid, create_direct, sys, members) -> Appended
  put_push_subscription(user, device, PushSub)      delete_push_subscription(user, device)
  set_mute(user, conv, until)              (0 unmutes)
"""
import dataclasses
import time

from .message import AppendMessage, Appended   # noqa: F401  (re-exported: the store's hot op and result)


def now_ms():
    return int(time.time() * 1000)


# --- records


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    pw: str          # argon2 hash ("" for a deleted account)
    ts: int = 0      # ms created
    disabled: bool = False   # may not log in or authenticate (`chatsrv user disable`)
    deleted: bool = False    # deleted by the operator: its name stays taken, its rows are gone


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    user: str
    device: str
    mac: bytes       # hmac of the token's verifier (chatsrv.auth.Tokens)


@dataclasses.dataclass(frozen=True, slots=True)
class Conv:
    kind: str                 # "direct" or "group"
    members: list             # current members; a group's in order of joining
    name: str = None          # groups only
    owner: str = None         # groups only
    ts: int = 0               # ms created


@dataclasses.dataclass(frozen=True, slots=True)
class Membership:
    joined: int = 1           # the first seq the member may read
    left: int = None          # the seq of the leaving, or None while a member

    @property
    def active(self):
        return self.left is None


@dataclasses.dataclass(frozen=True, slots=True)
class PushSub:
    endpoint: str
    p256dh: str
    auth: str
    ts: int = 0


# --- what a write can fail with


class Refusal(Exception):
    """A write op refused on what the store holds, raised before it writes anything. The
    store raises NotMember; the domain adds its own (chatsrv/domain/errors.py)."""


class NotMember(Refusal):
    """The user is not a member of the conversation (or it does not exist)."""


class Unavailable(Exception):
    """The storage is full or failing (the write was not made; retrying later may work)."""


from .writer import Writer  # noqa: E402,F401
