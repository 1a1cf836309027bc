"""The store: the LMDB environment, its key layout, reads, and the one writer thread.

Reads are short read transactions on the loop thread. Every write goes through
`Writer`, which owns the only write transaction: jobs that arrive while a commit
runs are applied together and committed once (group commit), and a job's
callback runs on the loop only after its commit has returned (synced unless the
bench-only unsafe mode is on). Nothing here knows about sockets.

Key layout (user and conv names never contain NUL, numbers are big-endian u64):
  users     user                    -> {"pw": argon2 hash, "ts": ms}
  tokens    selector                -> [user, device, hex hmac(verifier)]
  devtokens user\\0device\\0selector  -> b""
  convs     conv                    -> {"kind", "members", "name", "owner", "ts"}
  members   user\\0conv              -> {"joined": first seq visible}
  msgs      conv\\0seq               -> message record (the `"conv":...}` tail of its JSON)
  inbox     user\\0pos               -> msgs key
  reads     user\\0conv              -> read seq
  cursors   user\\0device            -> acked inbox position
  cids      user\\0cid               -> [conv, seq, ts, sender inbox position]
  delivered user\\0conv              -> highest seq of a direct conv acked by one of user's devices
  seen      user                    -> ms the user was last online
"""
import logging
import os
import threading
import time

import lmdb

if os.environ.get("CHATSRV_DROP_GIL", "1") == "1":
    lmdb.enable_drop_gil()
import orjson

from . import _core, datadir
from . import proto as P
from .metrics import Hist
from .proto import message_record

log = logging.getLogger("chatsrv.store")

NUL = b"\0"
DBS = ("users", "tokens", "devtokens", "convs", "members", "msgs", "inbox", "reads", "cursors", "cids",
       "delivered", "seen")


class Refused(Exception):
    """A writer job that is refused on what the store holds (raised before it writes anything)."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg

# push notifications (chatsrv/push.py): pushsubs user\0device -> subscription, mutes user\0conv -> until ms
DBS += ("pushsubs", "mutes")


def now_ms():
    return int(time.time() * 1000)


def direct_conv(a, b):
    return f"d:{a}:{b}" if a < b else f"d:{b}:{a}"


def prefix_scan(txn, db, prefix):
    """(key, value) pairs whose key starts with prefix, in key order."""
    cur = txn.cursor(db=db)
    if not cur.set_range(prefix):
        return
    for k, v in cur:
        if not k.startswith(prefix):
            return
        yield k, v


def last_under(txn, db, prefix):
    """The (key, value) with the largest key under prefix (keys are prefix + 8 bytes), or None."""
    cur = txn.cursor(db=db)
    # prefix + 0xff*8 is past every prefix + u64 key
    if cur.set_range(prefix + b"\xff" * 8):
        if not cur.prev():
            return None
    elif not cur.last():
        return None
    k = cur.key()
    return (k, cur.value()) if k.startswith(prefix) and len(k) == len(prefix) + 8 else None


class Store:
    """The LMDB environment and every read the hub makes."""

    def __init__(self, path, map_size, sync=True):
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.env = lmdb.open(
            os.path.join(path, "db"), map_size=map_size, max_dbs=len(DBS), subdir=True,
            sync=sync, metasync=sync, readahead=False, max_readers=1024, lock=True)
        for name in DBS:
            setattr(self, name, self.env.open_db(name.encode()))

    def close(self):
        self.env.close()

    def read(self):
        return self.env.begin()

    # --- reads (txn from read())

    def user(self, txn, user):
        v = txn.get(user.encode(), db=self.users)
        return orjson.loads(v) if v is not None else None

    def token(self, txn, selector):
        """(user, device, mac) of a token's selector, or None."""
        v = txn.get(selector, db=self.tokens)
        if v is None:
            return None
        user, device, mac = orjson.loads(v)
        return user, device, bytes.fromhex(mac)

    def conv(self, txn, conv):
        v = txn.get(conv.encode(), db=self.convs)
        return orjson.loads(v) if v is not None else None

    def membership(self, txn, user, conv):
        v = txn.get(user.encode() + NUL + conv.encode(), db=self.members)
        return orjson.loads(v) if v is not None else None

    def inbox_head(self, txn, user):
        last = last_under(txn, self.inbox, user.encode() + NUL)
        return _core.tail_u64(last[0]) if last else 0

    def last_message(self, txn, conv):
        """(seq, record) of the newest message of conv, or (0, None)."""
        last = last_under(txn, self.msgs, conv.encode() + NUL)
        return (_core.tail_u64(last[0]), last[1]) if last else (0, None)

    def message(self, txn, conv, seq):
        """The record of conv's message seq, or None."""
        return txn.get(_core.key_u64(conv.encode() + NUL, seq), db=self.msgs)

    def cursor(self, txn, user, device):
        v = txn.get(user.encode() + NUL + device.encode(), db=self.cursors)
        return _core.tail_u64(v) if v is not None else None

    def read_seq(self, txn, user, conv):
        v = txn.get(user.encode() + NUL + conv.encode(), db=self.reads)
        return _core.tail_u64(v) if v is not None else 0

    def history(self, txn, conv, before, limit, since=1):
        """Records of conv with since <= seq < before, the newest `limit`, ascending."""
        prefix = conv.encode() + NUL
        cur = txn.cursor(db=self.msgs)
        hi = _core.key_u64(prefix, before) if before is not None else prefix + b"\xff" * 8
        out = []
        # start on the last key below hi
        if cur.set_range(hi):
            ok = cur.prev()
        else:
            ok = cur.last()
        while ok and len(out) < limit:
            k = cur.key()
            if not k.startswith(prefix) or len(k) != len(prefix) + 8 or _core.tail_u64(k) < since:
                break
            out.append(cur.value())
            ok = cur.prev()
        out.reverse()
        return out

    def user_convs(self, txn, user):
        """[(conv, membership)] of every conversation the user is in."""
        prefix = user.encode() + NUL
        n = len(prefix)
        return [(k[n:].decode(), orjson.loads(v)) for k, v in prefix_scan(txn, self.members, prefix)]

    def last_seen(self, txn, user):
        v = txn.get(user.encode(), db=self.seen)
        return _core.tail_u64(v) if v is not None else 0

    def shares_conv(self, txn, user, other):
        """True if the two users are members of one conversation."""
        if self.membership(txn, user, direct_conv(user, other)) is not None:
            return True
        other_b = other.encode() + NUL
        for conv, m in self.user_convs(txn, user):
            if not m.get("left") and conv.startswith("g:"):
                v = txn.get(other_b + conv.encode(), db=self.members)
                if v is not None and not orjson.loads(v).get("left"):
                    return True
        return False

    def device_cursors(self, txn, user):
        return [_core.tail_u64(v) for _, v in prefix_scan(txn, self.cursors, user.encode() + NUL)]


def put_user(txn, users_db, user, pw_hash):
    """Creates an account; False if the name is taken."""
    return txn.put(user.encode(), orjson.dumps({"pw": pw_hash, "ts": now_ms()}), db=users_db, overwrite=False)


def add_user(data_dir, user, pw_hash):
    """Creates an account from outside the server (which may be running: LMDB serialises
    writers across processes, and the server caches nothing about accounts). False if
    the name is taken; NoDatabase where there is no database (an empty one is not made)."""
    datadir.require_database(data_dir)
    store = Store(data_dir, 0)     # 0: the map size the environment already has
    try:
        with store.env.begin(write=True) as txn:
            return put_user(txn, store.users, user, pw_hash)
    finally:
        store.close()


def backup(data_dir, dest):
    """Copies a data directory, live or not, to dest: a consistent, compacted LMDB snapshot
    (LMDB lets another process read while the server writes) and the files beside it, the
    keys (the token key keeps tokens valid; push subscriptions are bound to the VAPID key)."""
    src = os.path.join(data_dir, datadir.DB_DIR)
    datadir.require_database(data_dir)
    os.makedirs(os.path.join(dest, "db"), exist_ok=False)
    env = lmdb.open(src, readonly=True, max_dbs=len(DBS), subdir=True, lock=True)
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


class Job:
    """One unit of work for the writer: fn(txn) runs in the writer thread inside the
    batch's transaction; done(result, error) runs on the loop after the commit."""

    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn, done):
        self.fn = fn
        self.done = done
        self.result = None
        self.error = None


class Writer:
    """The only writer: a thread that applies jobs in arrival order, in batches, one commit per batch."""

    def __init__(self, store, loop, max_batch=1024):
        self.store = store
        self.loop = loop
        self.max_batch = max_batch
        self._queue = []
        self._cv = threading.Condition()
        self._stopping = False
        self._waiting = False
        # Caches derived from the store; cleared whenever a transaction aborts.
        self.heads = {}
        self.seqs = {}
        self.members = {}   # conv bytes -> member list; lists are replaced, never changed in place
        self.n_commits = 0
        self.n_jobs = 0
        self.n_failed = 0
        self.commit_seconds = 0.0
        self.commit_latency = Hist()
        self.ms = _core.MessageStore(self, store, message_record,
                                     lambda: Refused(P.FORBIDDEN, "not a member of this conversation"))
        self._thread = threading.Thread(target=self._run, name="chatsrv-writer", daemon=True)

    def start(self):
        self._thread.start()

    def submit(self, fn, done):
        if self._stopping:
            raise RuntimeError("writer is stopped")
        self._queue.append(Job(fn, done))
        # Only a sleeping writer needs the lock and a wake-up; one that is committing
        # takes whatever is queued when it comes back (that is the group commit).
        if self._waiting:
            with self._cv:
                self._cv.notify()

    def queued(self):
        return len(self._queue)

    def stop(self):
        """Commits what is queued, then ends the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join()

    def _run(self):
        while True:
            with self._cv:
                # _waiting is set before the queue is looked at, so a submit either is
                # seen here or sees _waiting and notifies: no wake-up is lost
                self._waiting = True
                while not self._queue and not self._stopping:
                    self._cv.wait()
                self._waiting = False
                if not self._queue:
                    return
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            self._apply(batch)
            self.loop.call_soon_threadsafe(self._finish, batch)

    def _apply(self, batch):
        t0 = time.perf_counter()
        env = self.store.env
        try:
            with env.begin(write=True) as txn:
                for job in batch:
                    try:
                        job.result = job.fn(txn)
                    except Refused as e:
                        job.error = e
        except Exception:
            # One bad job (a full map, say) must not fail the others: redo each alone.
            self._forget()
            for job in batch:
                job.result = None
                try:
                    with env.begin(write=True) as txn:
                        job.result = job.fn(txn)
                except Exception as e:
                    job.result = None
                    if isinstance(e, Refused):
                        job.error = e
                        continue
                    job.error = e
                    self.n_failed += 1
                    self._forget()
                    if not isinstance(e, lmdb.MapFullError):
                        log.exception("write failed")
        self.n_commits += 1
        self.n_jobs += len(batch)
        took = time.perf_counter() - t0
        self.commit_seconds += took
        self.commit_latency.observe(took)

    def _forget(self):
        self.heads.clear()
        self.seqs.clear()
        self.members.clear()

    @staticmethod
    def _finish(batch):
        for job in batch:
            try:
                job.done(job.result, job.error)
            except Exception:
                log.exception("write callback failed")

    # --- writes: each runs in the writer thread, inside a write txn

    def head_of(self, txn, user):
        last = last_under(txn, self.store.inbox, user.encode() + NUL)
        return _core.tail_u64(last[0]) if last else 0

    def last_seq(self, txn, conv_b):
        seq = self.seqs.get(conv_b)
        if seq is None:
            last = last_under(txn, self.store.msgs, conv_b + NUL)
            seq = _core.tail_u64(last[0]) if last else 0
        return seq

    def create_user(self, txn, user, pw_hash):
        return put_user(txn, self.store.users, user, pw_hash)

    def set_password_hash(self, txn, user, pw_hash):
        rec = orjson.loads(txn.get(user.encode(), db=self.store.users))
        rec["pw"] = pw_hash
        txn.put(user.encode(), orjson.dumps(rec), db=self.store.users)

    def add_token(self, txn, user, device, selector, mac):
        """Stores a token; a device seen for the first time starts at the highest cursor of the
        user's other devices. Returns the device's cursor."""
        s = self.store
        ud = user.encode() + NUL + device.encode()
        txn.put(selector, orjson.dumps([user, device, mac.hex()]), db=s.tokens)
        txn.put(ud + NUL + selector, b"", db=s.devtokens)
        v = txn.get(ud, db=s.cursors)
        if v is not None:
            return _core.tail_u64(v)
        start = max([_core.tail_u64(v) for _, v in prefix_scan(txn, s.cursors, user.encode() + NUL)], default=0)
        txn.put(ud, _core.key_u64(b"", start), db=s.cursors)
        return start

    def revoke_device(self, txn, user, device):
        s = self.store
        prefix = user.encode() + NUL + device.encode() + NUL
        selectors = [k[len(prefix):] for k, _ in prefix_scan(txn, s.devtokens, prefix)]
        for sel in selectors:
            txn.delete(sel, db=s.tokens)
            txn.delete(prefix + sel, db=s.devtokens)
        return selectors

    def revoke_other_devices(self, txn, user, keep):
        """Revokes the tokens of every device of user but `keep`; returns those devices."""
        prefix = user.encode() + NUL
        devices = {k[len(prefix):].split(NUL, 1)[0].decode() for k, _ in prefix_scan(txn, self.store.devtokens, prefix)}
        devices.discard(keep)
        for d in devices:
            self.revoke_device(txn, user, d)
        return sorted(devices)

    def ack(self, txn, user, device, upto):
        """Moves the device's cursor to upto if that is forward. Returns (cursor, delivered):
        delivered lists (conv, seq) of direct conversations whose acked position moved."""
        s = self.store
        user_b = user.encode()
        key = user_b + NUL + device.encode()
        v = txn.get(key, db=s.cursors)
        cur = _core.tail_u64(v) if v is not None else 0
        if upto <= cur:
            return cur, []
        txn.put(key, _core.key_u64(b"", upto), db=s.cursors)
        moved = []
        for conv, (seq, _) in _core.inbox_span(txn, s.inbox, user_b + NUL, cur, upto, True).items():
            dkey = user_b + NUL + conv.encode()
            old = txn.get(dkey, db=s.delivered)
            if old is None or _core.tail_u64(old) < seq:
                txn.put(dkey, _core.key_u64(b"", seq), db=s.delivered)
                moved.append((conv, seq))
        return upto, moved

    def read(self, txn, user, conv, seq):
        """Moves user's read marker of conv to max(marker, seq). Returns (moved, marker, members)."""
        s = self.store
        conv_b = conv.encode()
        v = txn.get(user.encode() + NUL + conv_b, db=s.members)
        if v is None or orjson.loads(v).get("left"):
            raise Refused(P.FORBIDDEN, "not a member of this conversation")
        if seq > self.last_seq(txn, conv_b):
            raise Refused(P.BAD_REQUEST, "seq is past the conversation's last message")
        key = user.encode() + NUL + conv_b
        old = txn.get(key, db=s.reads)
        old = _core.tail_u64(old) if old is not None else 0
        members = self.members_of(txn, conv_b)
        if seq <= old:
            return False, old, members
        txn.put(key, _core.key_u64(b"", seq), db=s.reads)
        return True, seq, members

    def set_seen(self, txn, user, ts):
        txn.put(user.encode(), _core.key_u64(b"", ts), db=self.store.seen)

    def members_of(self, txn, conv_b):
        members = self.members.get(conv_b)
        if members is None:
            v = txn.get(conv_b, db=self.store.convs)
            if v is None:
                return None
            members = self.members[conv_b] = orjson.loads(v)["members"]
        return members

    def create_conv(self, txn, conv, rec):
        """Creates conv with its members' rows; False if it already exists."""
        s = self.store
        conv_b = conv.encode()
        if not txn.put(conv_b, orjson.dumps(rec), db=s.convs, overwrite=False):
            return False
        joined = orjson.dumps({"joined": 1})
        for m in rec["members"]:
            txn.put(m.encode() + NUL + conv_b, joined, db=s.members)
        return True

    def send(self, txn, user, conv, body, cid, new_conv=None, sys=None, members=None):
        """Stores a message: see _core.MessageStore.store."""
        return self.ms.store(txn, user, conv, body, cid, new_conv, sys, members)

    def _users_exist(self, txn, users):
        for u in users:
            if txn.get(u.encode(), db=self.store.users) is None:
                raise Refused(P.NOT_FOUND, f"no such user: {u}")

    def group_create(self, txn, conv, owner, name, members, cap):
        """Creates a group with its creator as owner and first member; returns send()'s tuple."""
        members = list(dict.fromkeys([owner] + members))
        self._users_exist(txn, members[1:])
        if len(members) > cap:
            raise Refused(P.TOO_LARGE, f"a group has at most {cap} members")
        conv_b = conv.encode()
        rec = {"kind": "group", "name": name, "owner": owner, "members": members, "ts": now_ms()}
        if not txn.put(conv_b, orjson.dumps(rec), db=self.store.convs, overwrite=False):
            raise Refused(P.CONFLICT, "conversation id exists")
        self.members[conv_b] = members
        out = self.send(txn, owner, conv, None, None, sys={"action": "create", "users": members, "name": name},
                        members=members)
        joined = orjson.dumps({"joined": out[2]})
        for m in members:
            txn.put(m.encode() + NUL + conv_b, joined, db=self.store.members)
        return out

    def group_change(self, txn, conv, actor, action, users=(), name=None, cap=0):
        """add, remove, leave or rename, stored as a system message to the members before the
        change (and the added ones). Returns send()'s tuple, or None when nothing changes."""
        s = self.store
        conv_b = conv.encode()
        v = txn.get(conv_b, db=s.convs)
        rec = orjson.loads(v) if v is not None else None
        if rec is None or actor not in rec["members"]:
            raise Refused(P.FORBIDDEN, "not a member of this conversation")
        if rec["kind"] != "group":
            raise Refused(P.BAD_REQUEST, "not a group")
        members = rec["members"]
        if action == "add":
            users = [u for u in users if u not in members]
            self._users_exist(txn, users)
            if not users:
                return None
            if len(members) + len(users) > cap:
                raise Refused(P.TOO_LARGE, f"a group has at most {cap} members")
            after = members + users
            recipients = after
        elif action == "remove":
            if actor != rec["owner"]:
                raise Refused(P.FORBIDDEN, "only the owner may remove members")
            if users[0] not in members:
                raise Refused(P.NOT_FOUND, "not a member of this group")
            after = [m for m in members if m not in users]
            recipients = members
        elif action == "leave":
            users = [actor]
            after = [m for m in members if m != actor]
            recipients = members
        else:  # rename
            rec["name"] = name
            users = []
            after = recipients = members
        sys = {"action": action, "users": users, "name": rec["name"]}
        if action in ("remove", "leave") and rec["owner"] not in after:
            rec["owner"] = after[0] if after else None    # the longest-standing member
            sys["owner"] = rec["owner"]
        out = self.send(txn, actor, conv, None, None, members=recipients, sys=sys)
        seq = out[2]
        rec["members"] = after
        txn.put(conv_b, orjson.dumps(rec), db=s.convs)
        self.members[conv_b] = after
        for u in users:
            mkey = u.encode() + NUL + conv_b
            if action == "add":
                txn.put(mkey, orjson.dumps({"joined": seq}), db=s.members)
                # what came before joining is not theirs to read: it is not unread either
                rkey = u.encode() + NUL + conv_b
                old_read = txn.get(rkey, db=s.reads)
                if old_read is None or _core.tail_u64(old_read) < seq - 1:
                    txn.put(rkey, _core.key_u64(b"", seq - 1), db=s.reads)
            else:
                old = orjson.loads(txn.get(mkey, db=s.members) or b"{}")
                txn.put(mkey, orjson.dumps({"joined": old.get("joined", 1), "left": seq}), db=s.members)
        return out
