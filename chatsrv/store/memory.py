"""The in-memory adapter: the store interface on Python dicts, for unit tests of the
domain and for the store contract suite (tests/unit/store), which runs the same cases
on this adapter and on LMDB. Not durable, not for serving.

A write transaction works on copies of the tables and swaps them in when it ends
without an exception, so readers (on other threads) see only committed states.
"""
import contextlib
import threading

from .. import convid
from . import Appended, Conv, Membership, NotMember, Token, User, now_ms

TABLES = ("users", "tokens", "devtokens", "convs", "members", "msgs", "inbox", "reads", "cursors", "cids",
          "delivered", "seen", "pushsubs", "mutes", "devseen")
USER_TABLES = ("devtokens", "members", "inbox", "reads", "cursors", "cids", "delivered", "seen", "pushsubs",
               "mutes", "devseen")


def _pairs(table, first):
    """[(second, value)] of a table keyed (first, second), in key order."""
    return sorted(((k[1], v) for k, v in table.items() if k[0] == first), key=lambda kv: kv[0].encode())


class MemoryRead:
    def __init__(self, t):
        self.t = t

    def user(self, name):
        return self.t["users"].get(name)

    def token(self, selector):
        return self.t["tokens"].get(selector)

    def conv(self, conv):
        return self.t["convs"].get(conv)

    def members(self, conv):
        c = self.t["convs"].get(conv)
        return c.members if c is not None else None

    def membership(self, user, conv):
        return self.t["members"].get((user, conv))

    def memberships(self, user):
        return _pairs(self.t["members"], user)

    def last_seq(self, conv):
        return len(self.t["msgs"].get(conv, ()))

    def last_message(self, conv):
        msgs = self.t["msgs"].get(conv)
        return (len(msgs), msgs[-1]) if msgs else (0, None)

    def message(self, conv, seq):
        msgs = self.t["msgs"].get(conv, ())
        return msgs[seq - 1] if 1 <= seq <= len(msgs) else None

    def history(self, conv, before, limit, since=1):
        msgs = self.t["msgs"].get(conv, [])
        hi = len(msgs) + 1 if before is None else min(before, len(msgs) + 1)
        lo = max(since, hi - limit, 1)
        return msgs[lo - 1:hi - 1] if hi > lo else []

    def inbox_head(self, user):
        return len(self.t["inbox"].get(user, ()))

    def inbox_after(self, user, after, n):
        entries = self.t["inbox"].get(user, [])[after:after + n]
        msgs = self.t["msgs"]
        return (list(range(after + 1, after + 1 + len(entries))),
                [msgs[conv][seq - 1] for conv, seq in entries])

    def inbox_span(self, user, after, upto, direct_only):
        out = {}
        for pos, (conv, seq) in enumerate(self.t["inbox"].get(user, [])[after:upto], after + 1):
            if not direct_only or convid.is_direct(conv):
                out[conv] = (seq, pos)
        return out

    def cursor(self, user, device):
        return self.t["cursors"].get((user, device))

    def cursors(self, user):
        return [v for _, v in _pairs(self.t["cursors"], user)]

    def read_seq(self, user, conv):
        return self.t["reads"].get((user, conv), 0)

    def delivered(self, user, conv):
        return self.t["delivered"].get((user, conv), 0)

    def last_seen(self, user):
        return self.t["seen"].get(user, 0)

    def device_seen(self, user, device):
        return self.t["devseen"].get((user, device), 0)

    def users(self):
        return sorted(self.t["users"].items(), key=lambda kv: kv[0].encode())

    def devices(self, user):
        return sorted(d for (u, d), sels in self.t["devtokens"].items() if u == user and sels)

    def device_tokens(self, user, device):
        return sorted(self.t["devtokens"].get((user, device), ()))

    def push_subscriptions(self, user):
        return _pairs(self.t["pushsubs"], user)

    def push_subscription(self, user, device):
        return self.t["pushsubs"].get((user, device))

    def muted_until(self, user, conv):
        return self.t["mutes"].get((user, conv), 0)


class MemoryWrite(MemoryRead):
    def __init__(self, t, record):
        super().__init__(t)
        self.record = record
        self._owned = {name: set() for name in TABLES}    # list values already copied

    def _list(self, table, key):
        """The list at key, copied on first write in this transaction."""
        tab = self.t[table]
        cur = tab.get(key)
        if key not in self._owned[table]:
            cur = tab[key] = list(cur or ())
            self._owned[table].add(key)
        return cur

    def create_user(self, user, pw_hash):
        if user in self.t["users"]:
            return False
        self.t["users"][user] = User(pw_hash, now_ms())
        return True

    def set_password_hash(self, user, pw_hash):
        old = self.t["users"][user]
        self.t["users"][user] = User(pw_hash, old.ts)

    def put_token(self, user, device, selector, mac):
        self.t["tokens"][selector] = Token(user, device, mac)
        sels = self._list("devtokens", (user, device))
        if selector not in sels:
            sels.append(selector)

    def delete_token(self, user, device, selector):
        self.t["tokens"].pop(selector, None)
        sels = self._list("devtokens", (user, device))
        if selector in sels:
            sels.remove(selector)

    def set_cursor(self, user, device, pos):
        self.t["cursors"][(user, device)] = pos

    def set_read(self, user, conv, seq):
        self.t["reads"][(user, conv)] = seq

    def set_delivered(self, user, conv, seq):
        self.t["delivered"][(user, conv)] = seq

    def set_seen(self, user, ms):
        self.t["seen"][user] = ms

    def set_device_seen(self, user, device, ms):
        self.t["devseen"][(user, device)] = ms

    def put_user(self, user, u):
        self.t["users"][user] = u

    def delete_user_rows(self, user):
        for sels in [v for (u, _), v in self.t["devtokens"].items() if u == user]:
            for sel in sels:
                self.t["tokens"].pop(sel, None)
        for table in USER_TABLES:
            tab = self.t[table]
            for k in [k for k in tab if k == user or (type(k) is tuple and k[0] == user)]:
                del tab[k]

    def create_conv(self, conv, c):
        if conv in self.t["convs"]:
            return False
        self.put_conv(conv, c)
        return True

    def put_conv(self, conv, c):
        self.t["convs"][conv] = Conv(c.kind, list(c.members), c.name, c.owner, c.ts)

    def set_membership(self, user, conv, m):
        self.t["members"][(user, conv)] = m

    def append_message(self, user, conv, body, cid, create_direct, sys, members):
        prev = self.t["cids"].get((user, cid)) if cid is not None else None
        if prev is not None:
            return Appended(True, *prev)
        if members is None:
            if create_direct is not None and self.create_conv(conv, Conv("direct", list(create_direct),
                                                                         ts=now_ms())):
                for m in create_direct:
                    self.set_membership(m, conv, Membership())
            members = self.members(conv)
            if members is None or user not in members:
                raise NotMember()
        msgs = self._list("msgs", conv)
        seq = len(msgs) + 1
        ts = now_ms()
        record = self.record(conv, seq, user, ts, body, cid, sys)
        msgs.append(record)
        positions = []
        for m in members:
            box = self._list("inbox", m)
            box.append((conv, seq))
            positions.append(len(box))
        mine = 0
        if user in members:
            self.set_read(user, conv, seq)
            mine = positions[members.index(user)]
        if cid is not None:
            self.t["cids"][(user, cid)] = (conv, seq, ts, mine)
        return Appended(False, conv, seq, ts, mine, record, positions, list(members))

    def put_push_subscription(self, user, device, sub):
        self.t["pushsubs"][(user, device)] = sub

    def delete_push_subscription(self, user, device):
        return self.t["pushsubs"].pop((user, device), None) is not None

    def set_mute(self, user, conv, until):
        if until == 0:
            self.t["mutes"].pop((user, conv), None)
        else:
            self.t["mutes"][(user, conv)] = until


class MemoryStore:
    def __init__(self, record):
        """`record(conv, seq, user, ts, body, cid, sys)` encodes a message (the wire's format)."""
        self.record = record
        self.t = {name: {} for name in TABLES}
        self._lock = threading.Lock()     # one write transaction at a time, as in LMDB

    def close(self):
        pass

    @contextlib.contextmanager
    def read(self):
        yield MemoryRead(self.t)

    @contextlib.contextmanager
    def write(self):
        with self._lock:
            w = MemoryWrite({name: dict(tab) for name, tab in self.t.items()}, self.record)
            yield w
            self.t = w.t

    @staticmethod
    def unavailable(exc):
        return isinstance(exc, (MemoryError, OSError))
