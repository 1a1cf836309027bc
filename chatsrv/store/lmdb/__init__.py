"""The LMDB adapter: the environment, its tables, and every read and write of the store
interface (chatsrv/store/__init__.py) on LMDB. The only code that knows the key layout
(layout.pyx builds every key; inbox.pyx appends a message and scans inboxes in C).

Reads are short read transactions (any thread); writes happen only inside `write()`,
which only the writer calls. Must never hold a domain rule or know a socket.
"""
import contextlib
import functools
import os

import lmdb

if os.environ.get("CHATSRV_DROP_GIL", "1") == "1":
    lmdb.enable_drop_gil()
import orjson

from ... import convid, datadir
from .. import Conv, Membership, NotMember, PushSub, Token, User, now_ms
from . import inbox as _inbox
from . import layout as L


def _scan(txn, db, prefix):
    """(key, value) pairs whose key starts with prefix, in key order."""
    cur = txn.cursor(db=db)
    if not cur.set_range(prefix):
        return
    for k, v in cur:
        if not k.startswith(prefix):
            return
        yield k, v


def _last_under(txn, db, prefix):
    """The (key, value) with the largest key prefix + u64, or None."""
    cur = txn.cursor(db=db)
    if cur.set_range(prefix + L.MAX_U64):
        if not cur.prev():
            return None
    elif not cur.last():
        return None
    k = cur.key()
    return (k, cur.value()) if k.startswith(prefix) and len(k) == len(prefix) + 8 else None


def _conv_rec(c):
    rec = {"kind": c.kind, "members": c.members, "ts": c.ts}
    if c.kind == "group":
        rec.update(name=c.name, owner=c.owner)
    return orjson.dumps(rec)


def _user(v):
    d = orjson.loads(v)
    return User(d["pw"], d.get("ts", 0), d.get("disabled", False), d.get("deleted", False))


def _conv(v):
    d = orjson.loads(v)
    return Conv(d["kind"], d["members"], d.get("name"), d.get("owner"), d.get("ts", 0))


def _membership(v):
    d = orjson.loads(v)
    return Membership(d.get("joined", 1), d.get("left"))


def _u64_or(v, default):
    return L.tail_u64(v) if v is not None else default


class LmdbRead:
    """The reads of the store interface over one LMDB transaction."""

    def __init__(self, store, txn):
        self.s = store
        self.db = store.dbs
        self.txn = txn

    def _get(self, table, key):
        return self.txn.get(key, db=self.db[table])

    def user(self, name):
        v = self._get("users", name.encode())
        if v is None:
            return None
        return _user(v)

    def users(self):
        return [(k.decode(), _user(v)) for k, v in self.txn.cursor(db=self.db["users"])]

    def token(self, selector):
        v = self._get("tokens", selector)
        if v is None:
            return None
        user, device, mac = orjson.loads(v)
        return Token(user, device, bytes.fromhex(mac))

    def conv(self, conv):
        v = self._get("convs", conv.encode())
        return _conv(v) if v is not None else None

    def members(self, conv):
        c = self.conv(conv)
        return c.members if c is not None else None

    def membership(self, user, conv):
        v = self._get("members", L.pair(user, conv))
        return _membership(v) if v is not None else None

    def memberships(self, user):
        prefix = L.under(user)
        return [(L.after_prefix(k, prefix), _membership(v)) for k, v in _scan(self.txn, self.db["members"], prefix)]

    def last_seq(self, conv):
        last = _last_under(self.txn, self.db["msgs"], L.under(conv))
        return L.tail_u64(last[0]) if last else 0

    def last_message(self, conv):
        last = _last_under(self.txn, self.db["msgs"], L.under(conv))
        return (L.tail_u64(last[0]), last[1]) if last else (0, None)

    def message(self, conv, seq):
        return self._get("msgs", L.msg(conv.encode(), seq))

    def history(self, conv, before, limit, since=1):
        prefix = L.under(conv)
        cur = self.txn.cursor(db=self.db["msgs"])
        hi = L.key_u64(prefix, before) if before is not None else prefix + L.MAX_U64
        out = []
        ok = cur.prev() if cur.set_range(hi) else cur.last()     # the last key below hi
        while ok and len(out) < limit:
            k = cur.key()
            if not k.startswith(prefix) or len(k) != len(prefix) + 8 or L.tail_u64(k) < since:
                break
            out.append(cur.value())
            ok = cur.prev()
        out.reverse()
        return out

    def inbox_head(self, user):
        last = _last_under(self.txn, self.db["inbox"], L.under(user))
        return L.tail_u64(last[0]) if last else 0

    def inbox_after(self, user, after, n):
        return _inbox.read_after(self.txn, self.db["inbox"], self.db["msgs"], L.under(user), after, n)

    def inbox_span(self, user, after, upto, direct_only):
        return _inbox.span(self.txn, self.db["inbox"], L.under(user), after, upto,
                           convid.DIRECT_B if direct_only else None)

    def cursor(self, user, device):
        return _u64_or(self._get("cursors", L.pair(user, device)), None)

    def cursors(self, user):
        return [L.tail_u64(v) for _, v in _scan(self.txn, self.db["cursors"], L.under(user))]

    def read_seq(self, user, conv):
        return _u64_or(self._get("reads", L.pair(user, conv)), 0)

    def delivered(self, user, conv):
        return _u64_or(self._get("delivered", L.pair(user, conv)), 0)

    def last_seen(self, user):
        return _u64_or(self._get("seen", user.encode()), 0)

    def device_seen(self, user, device):
        return _u64_or(self._get("devseen", L.pair(user, device)), 0)

    def devices(self, user):
        prefix = L.under(user)
        return sorted({L.device_of_devtoken(k, prefix) for k, _ in _scan(self.txn, self.db["devtokens"], prefix)})

    def device_tokens(self, user, device):
        prefix = L.devtokens_of(user, device)
        return [k[len(prefix):] for k, _ in _scan(self.txn, self.db["devtokens"], prefix)]

    def push_subscriptions(self, user):
        prefix = L.under(user)
        return [(L.after_prefix(k, prefix), PushSub(**orjson.loads(v)))
                for k, v in _scan(self.txn, self.db["pushsubs"], prefix)]

    def push_subscription(self, user, device):
        v = self._get("pushsubs", L.pair(user, device))
        return PushSub(**orjson.loads(v)) if v is not None else None

    def muted_until(self, user, conv):
        return _u64_or(self._get("mutes", L.pair(user, conv)), 0)


class LmdbWrite(LmdbRead):
    """The writes of the store interface inside the writer's transaction. Reads of the
    conversation, members, last seq and inbox heads go through the store's caches."""

    def __init__(self, store, txn):
        super().__init__(store, txn)
        # bound once per batch: the send path calls straight into the compiled appender
        self.append_message = functools.partial(store.appender.append, txn)

    def _put(self, table, key, value, overwrite=True):
        return self.txn.put(key, value, db=self.db[table], overwrite=overwrite)

    def _delete(self, table, key):
        return self.txn.delete(key, db=self.db[table])

    def members(self, conv):
        return self.s.members_of(self.txn, conv)

    def last_seq(self, conv):
        seq = self.s.appender.seqs.get(conv)
        return self.s.last_seq(self.txn, conv) if seq is None else seq

    def inbox_head(self, user):
        h = self.s.appender.heads.get(user)
        return self.s.head_of(self.txn, user) if h is None else h

    def create_user(self, user, pw_hash):
        return self._put("users", user.encode(), orjson.dumps({"pw": pw_hash, "ts": now_ms()}), overwrite=False)

    def set_password_hash(self, user, pw_hash):
        rec = orjson.loads(self._get("users", user.encode()))
        rec["pw"] = pw_hash
        self._put("users", user.encode(), orjson.dumps(rec))

    def put_token(self, user, device, selector, mac):
        self._put("tokens", selector, orjson.dumps([user, device, mac.hex()]))
        self._put("devtokens", L.devtoken(user, device, selector), b"")

    def delete_token(self, user, device, selector):
        self._delete("tokens", selector)
        self._delete("devtokens", L.devtoken(user, device, selector))

    def set_cursor(self, user, device, pos):
        self._put("cursors", L.pair(user, device), L.u64(pos))

    def set_read(self, user, conv, seq):
        self._put("reads", L.pair(user, conv), L.u64(seq))

    def set_delivered(self, user, conv, seq):
        self._put("delivered", L.pair(user, conv), L.u64(seq))

    def set_seen(self, user, ms):
        self._put("seen", user.encode(), L.u64(ms))

    def set_device_seen(self, user, device, ms):
        self._put("devseen", L.pair(user, device), L.u64(ms))

    def put_user(self, user, u):
        rec = {"pw": u.pw, "ts": u.ts}
        if u.disabled:
            rec["disabled"] = True
        if u.deleted:
            rec["deleted"] = True
        self._put("users", user.encode(), orjson.dumps(rec))

    def delete_user_rows(self, user):
        for selector in [k[len(L.under(user)):].split(b"\0", 1)[1]
                         for k, _ in _scan(self.txn, self.db["devtokens"], L.under(user))]:
            self._delete("tokens", selector)
        for table in L.USER_TABLES:
            for k in [k for k, _ in _scan(self.txn, self.db[table], L.under(user))]:
                self._delete(table, k)
        self._delete("seen", user.encode())     # keyed by the name alone
        self.s.appender.forget()     # inbox heads cached for this user

    def create_conv(self, conv, c):
        if not self._put("convs", conv.encode(), _conv_rec(c), overwrite=False):
            return False
        self.s.appender.members[conv] = c.members
        return True

    def put_conv(self, conv, c):
        self._put("convs", conv.encode(), _conv_rec(c))
        self.s.appender.members[conv] = c.members

    def set_membership(self, user, conv, m):
        rec = {"joined": m.joined} if m.left is None else {"joined": m.joined, "left": m.left}
        self._put("members", L.pair(user, conv), orjson.dumps(rec))

    def put_push_subscription(self, user, device, sub):
        self._put("pushsubs", L.pair(user, device), orjson.dumps(_sub_rec(sub)))

    def delete_push_subscription(self, user, device):
        return self._delete("pushsubs", L.pair(user, device))

    def set_mute(self, user, conv, until):
        if until == 0:
            self._delete("mutes", L.pair(user, conv))
        else:
            self._put("mutes", L.pair(user, conv), L.u64(until))


def _sub_rec(sub):
    return {"endpoint": sub.endpoint, "p256dh": sub.p256dh, "auth": sub.auth, "ts": sub.ts}


class LmdbStore:
    """The LMDB environment (one per data directory) and the writer's caches."""

    def __init__(self, path, map_size, record, sync=True):
        """`record(conv, seq, user, ts, body, cid, sys)` encodes a message (the wire's format)."""
        os.makedirs(os.path.join(path, datadir.DB_DIR), mode=0o700, exist_ok=True)
        self.path = path
        self.env = _open(path, map_size, sync=sync)
        self.dbs = {name: self.env.open_db(name.encode()) for name in L.TABLES}
        self.appender = _inbox.Appender(self, self.dbs, record, NotMember)

    def close(self):
        self.env.close()

    def usage(self):
        """{"map_size", "map_used" (bytes up to the last page in use), "users"}: a few
        microseconds, for the metrics at scrape time."""
        return _usage(self.env, self.dbs["users"])

    def counts(self):
        """{"users", "conversations", "messages", "inbox_entries"}: row counts, O(1)."""
        with self.env.begin() as txn:
            return {name: txn.stat(self.dbs[table])["entries"] for name, table in
                    (("users", "users"), ("conversations", "convs"), ("messages", "msgs"),
                     ("inbox_entries", "inbox"))}

    def walk(self, what):
        """For `chatsrv check`, in key order in one snapshot: "messages" -> (conv, seq);
        "inboxes" -> (user, pos, conv, seq, exists) where exists says the message is there;
        "conversations" -> (conv, Conv); "cursors" -> (user, device, pos)."""
        with self.env.begin() as txn:
            if what == "messages":
                for k in txn.cursor(db=self.dbs["msgs"]).iternext(values=False):
                    yield L.conv_of_msg(k), L.tail_u64(k)
            elif what == "inboxes":
                msgs = self.dbs["msgs"]
                for k, v in txn.cursor(db=self.dbs["inbox"]):
                    yield (k[:len(k) - 9].decode(), L.tail_u64(k), L.conv_of_msg(v), L.tail_u64(v),
                           txn.get(v, db=msgs) is not None)
            elif what == "conversations":
                for k, v in txn.cursor(db=self.dbs["convs"]):
                    yield k.decode(), _conv(v)
            elif what == "cursors":
                for k, v in txn.cursor(db=self.dbs["cursors"]):
                    user, device = k.decode().split("\0", 1)
                    yield user, device, L.tail_u64(v)

    @contextlib.contextmanager
    def read(self):
        with self.env.begin() as txn:
            yield LmdbRead(self, txn)

    @contextlib.contextmanager
    def write(self):
        """The writer's transaction: committed when the block ends, aborted (and the
        caches forgotten, as they may hold its writes) when it raises."""
        try:
            with self.env.begin(write=True) as txn:
                yield LmdbWrite(self, txn)
        except BaseException:
            self.appender.forget()
            raise

    @staticmethod
    def unavailable(exc):
        """True for a failure of the storage itself (full map or disk, I/O error)."""
        return isinstance(exc, (lmdb.MapFullError, lmdb.DiskError, OSError))

    # --- cache misses of the appender (writer thread, inside its transaction)

    def members_of(self, txn, conv):
        members = self.appender.members.get(conv)
        if members is None:
            v = txn.get(conv.encode(), db=self.dbs["convs"])
            if v is None:
                return None
            members = self.appender.members[conv] = orjson.loads(v)["members"]
        return members

    def create_direct(self, txn, conv, members):
        """The direct conversation of two users, both members from its first message."""
        w = LmdbWrite(self, txn)
        if w.create_conv(conv, Conv("direct", list(members), ts=now_ms())):
            for m in members:
                w.set_membership(m, conv, Membership())

    def last_seq(self, txn, conv):
        last = _last_under(txn, self.dbs["msgs"], L.under(conv))
        return L.tail_u64(last[0]) if last else 0

    def head_of(self, txn, user):
        last = _last_under(txn, self.dbs["inbox"], L.under(user))
        return L.tail_u64(last[0]) if last else 0


def _usage(env, users_db):
    info = env.info()
    with env.begin() as txn:
        users = txn.stat(users_db)["entries"]
    return {"map_size": info["map_size"], "map_used": (info["last_pgno"] + 1) * env.stat()["psize"], "users": users}


def _open(path, map_size, sync=True, readonly=False):
    return lmdb.open(os.path.join(path, datadir.DB_DIR), map_size=map_size, max_dbs=len(L.TABLES), subdir=True,
                     sync=sync, metasync=sync, readahead=False, max_readers=1024, lock=True, readonly=readonly,
                     mode=0o600)


def add_user(data_dir, user, pw_hash):
    """Creates an account from outside the server (which may be running: LMDB serialises
    writers across processes, and the server caches nothing about accounts). False if
    the name is taken; NoDatabase where there is no database (an empty one is not made)."""
    datadir.require_database(data_dir)
    env = _open(data_dir, 0)     # 0: the map size the environment already has
    try:
        users = env.open_db(b"users")
        with env.begin(write=True) as txn:
            return txn.put(user.encode(), orjson.dumps({"pw": pw_hash, "ts": now_ms()}), db=users,
                           overwrite=False)
    finally:
        env.close()


def backup(data_dir, dest):
    """Copies a data directory, live or not, to dest: a consistent, compacted LMDB snapshot
    (LMDB lets another process read while the server writes) and the files beside it, the
    keys (the token key keeps tokens valid; push subscriptions are bound to the VAPID key)."""
    src = os.path.join(data_dir, datadir.DB_DIR)
    datadir.require_database(data_dir)
    os.makedirs(os.path.join(dest, "db"), mode=0o700, exist_ok=False)
    env = lmdb.open(src, readonly=True, max_dbs=len(L.TABLES), subdir=True, lock=True)
    try:
        env.copy(os.path.join(dest, "db"), compact=True)
    finally:
        env.close()
    for name in sorted(os.listdir(data_dir)):
        if name == datadir.LOCK_NAME:
            continue     # the running server's, not data: the copy must be free to serve
        path = os.path.join(data_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                data = f.read()
            fd = os.open(os.path.join(dest, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    datadir.make_private(dest)     # the copy holds the same secrets
