"""The store: the LMDB environment, its key layout, reads, and the one writer thread.

Reads are short read transactions on the loop thread. Every write goes through
`Writer`, which owns the only write transaction: jobs that arrive while a commit
runs are applied together and committed once (group commit), and a job's
callback runs on the loop only after its commit has returned (synced unless the
bench-only unsafe mode is on). Nothing here knows about sockets.

Key layout (user and conv names never contain NUL, numbers are big-endian u64):
  users     user                    -> {"pw": argon2 hash, "ts": ms}
  tokens    hmac(token)             -> [user, device]
  devtokens user\\0device\\0hmac      -> b""
  convs     conv                    -> {"kind", "members", "name", "owner", "ts"}
  members   user\\0conv              -> {"joined": first seq visible}
  msgs      conv\\0seq               -> message record (the `"conv":...}` tail of its JSON)
  inbox     user\\0pos               -> msgs key
  reads     user\\0conv              -> read seq
  cursors   user\\0device            -> acked inbox position
  cids      user\\0cid               -> [conv, seq, ts, sender inbox position]
"""
import logging
import os
import threading
import time

import lmdb
import orjson

from . import _core
from .protocol import message_record

log = logging.getLogger("chatsrv.store")

NUL = b"\0"
DBS = ("users", "tokens", "devtokens", "convs", "members", "msgs", "inbox", "reads", "cursors", "cids")

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

    def token(self, txn, mac):
        v = txn.get(mac, db=self.tokens)
        return orjson.loads(v) if v is not None else None

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

    def device_cursors(self, txn, user):
        return [_core.tail_u64(v) for _, v in prefix_scan(txn, self.cursors, user.encode() + NUL)]


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
        # Caches derived from the store; cleared whenever a transaction aborts.
        self.heads = {}
        self.seqs = {}
        self.n_commits = 0
        self.n_jobs = 0
        self.n_failed = 0
        self.commit_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="chatsrv-writer", daemon=True)

    def start(self):
        self._thread.start()

    def submit(self, fn, done):
        with self._cv:
            if self._stopping:
                raise RuntimeError("writer is stopped")
            self._queue.append(Job(fn, done))
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
                while not self._queue and not self._stopping:
                    self._cv.wait()
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
                    job.result = job.fn(txn)
        except Exception:
            # One bad job (a full map, say) must not fail the others: redo each alone.
            self.heads.clear()
            self.seqs.clear()
            for job in batch:
                job.result = None
                try:
                    with env.begin(write=True) as txn:
                        job.result = job.fn(txn)
                except Exception as e:
                    job.result = None
                    job.error = e
                    self.n_failed += 1
                    self.heads.clear()
                    self.seqs.clear()
                    if not isinstance(e, lmdb.MapFullError):
                        log.exception("write failed")
        self.n_commits += 1
        self.n_jobs += len(batch)
        self.commit_seconds += time.perf_counter() - t0

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
        return txn.put(user.encode(), orjson.dumps({"pw": pw_hash, "ts": now_ms()}), db=self.store.users,
                       overwrite=False)

    def set_password_hash(self, txn, user, pw_hash):
        rec = orjson.loads(txn.get(user.encode(), db=self.store.users))
        rec["pw"] = pw_hash
        txn.put(user.encode(), orjson.dumps(rec), db=self.store.users)

    def add_token(self, txn, user, device, mac):
        """Stores a token; a device seen for the first time starts at the highest cursor of the
        user's other devices. Returns the device's cursor."""
        s = self.store
        ud = user.encode() + NUL + device.encode()
        txn.put(mac, orjson.dumps([user, device]), db=s.tokens)
        txn.put(ud + NUL + mac, b"", db=s.devtokens)
        v = txn.get(ud, db=s.cursors)
        if v is not None:
            return _core.tail_u64(v)
        start = max([_core.tail_u64(v) for _, v in prefix_scan(txn, s.cursors, user.encode() + NUL)], default=0)
        txn.put(ud, _core.key_u64(b"", start), db=s.cursors)
        return start

    def revoke_device(self, txn, user, device):
        s = self.store
        prefix = user.encode() + NUL + device.encode() + NUL
        macs = [k[len(prefix):] for k, _ in prefix_scan(txn, s.devtokens, prefix)]
        for mac in macs:
            txn.delete(mac, db=s.tokens)
            txn.delete(prefix + mac, db=s.devtokens)
        return macs

    def ack(self, txn, user, device, upto):
        key = user.encode() + NUL + device.encode()
        v = txn.get(key, db=self.store.cursors)
        cur = _core.tail_u64(v) if v is not None else 0
        if upto > cur:
            txn.put(key, _core.key_u64(b"", upto), db=self.store.cursors)
            return upto
        return cur

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

    def send(self, txn, user, conv, members, body, cid, new_conv=None, sys=None):
        """Stores a message and appends it to every member's inbox.

        Returns (dup, conv, seq, ts, inbox, record, positions), inbox being the
        sender's own inbox position: a cid seen before gives dup=True with the
        first send's conv, seq, ts and inbox, and stores nothing.
        """
        s = self.store
        user_b = user.encode()
        if cid is not None:
            ck = user_b + NUL + cid.encode()
            prev = txn.get(ck, db=s.cids)
            if prev is not None:
                _conv, seq, ts, mine = orjson.loads(prev)
                return (True, _conv, seq, ts, mine, None, None)
        if new_conv is not None:
            self.create_conv(txn, conv, new_conv)
        conv_b = conv.encode()
        seq = self.last_seq(txn, conv_b) + 1
        ts = now_ms()
        record = message_record(conv, seq, user, ts, body=body, cid=cid, sys=sys)
        mkey = _core.key_u64(conv_b + NUL, seq)
        txn.put(mkey, record, db=s.msgs)
        self.seqs[conv_b] = seq
        positions = _core.append_inboxes(txn, s.inbox, members, self.heads,
                                         self.head_of, mkey)
        txn.put(user_b + NUL + conv_b, _core.key_u64(b"", seq), db=s.reads)
        mine = positions[members.index(user)] if user in members else 0
        if cid is not None:
            txn.put(ck, orjson.dumps([conv, seq, ts, mine]), db=s.cids)
        return (False, conv, seq, ts, mine, record, positions)
