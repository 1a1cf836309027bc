"""The operator's commands on a data directory (`chatsrv user`, `sessions`, `logout`,
`stats`, `check`, `restore`): what each does, on the store interface and the domain's
write ops. Never a key layout (that is chatsrv/store/lmdb's), and never beside a running
server for what its caches hold (members, seqs, inbox heads): those commands refuse.

LMDB serialises writers across processes, and a running server reads accounts and tokens
from the store on every login and auth, so adding or disabling an account, changing a
password and revoking tokens are safe while it runs. Deleting an account changes
memberships, and a restore replaces the database: both need the server stopped."""
import contextlib
import os
import shutil
import sys
import time

from . import datadir
from .domain.accounts import CreateUser, DeleteAccount, RevokeDevice, SetDisabled, SetPasswordHash
from .domain.pushsubs import DeletePushSub


class AdminError(Exception):
    """An operator's command that cannot be done: one line, fit to print as is."""


class Progress:
    """A count on stderr: rewritten in place on a terminal, else a line every few seconds."""

    def __init__(self, label, total=None, out=None):
        self.label, self.total, self.out = label, total, out or sys.stderr
        self.n = 0
        self.tty = self.out.isatty()
        self._last = time.monotonic()

    def tick(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self._last >= (0.2 if self.tty else 2.0):
            self._last = now
            self._show("\r" if self.tty else "", "" if self.tty else "\n")

    def _show(self, start, end):
        of = f"/{self.total}" if self.total else ""
        self.out.write(f"{start}{self.label}: {self.n}{of}{end}")
        self.out.flush()

    def done(self):
        self._show("\r" if self.tty else "", "\n")


def open_store(data):
    """The data directory's LMDB store (never creates one)."""
    from .proto import message_record
    from .store.lmdb import LmdbStore

    try:
        datadir.require_database(data)
    except datadir.NoDatabase as e:
        raise AdminError(str(e)) from None
    return LmdbStore(data, 0, message_record)      # 0: the map size the database already has


@contextlib.contextmanager
def exclusive(data, what):
    """Holds the data directory's lock (no server can start meanwhile), or refuses when a
    server holds it."""
    try:
        lock = datadir.Lock(data).acquire()
    except datadir.InUse as e:
        who = f" (pid {e.pid})" if e.pid else ""
        raise AdminError(f"a server is running on {data}{who}; stop it first: {what}") from None
    try:
        yield
    finally:
        lock.release()


def write(store, op):
    with store.write() as w:
        return op(w)


def _when(ms):
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) + "Z" if ms else "never"


def _table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


# --- accounts


def user_add(store, user, pw_hash):
    if not write(store, CreateUser(user, pw_hash)):
        raise AdminError(f"{user} exists")


def user_list(store):
    with store.read() as r:
        rows = []
        for name, u in r.users():
            status = "deleted" if u.deleted else "disabled" if u.disabled else "active"
            rows.append((name, _when(u.ts), _when(r.last_seen(name)), len(r.devices(name)), status))
    return _table(rows, ("USER", "CREATED", "LAST SEEN", "DEVICES", "STATUS"))


def account(store, user):
    with store.read() as r:
        u = r.user(user)
    if u is None or u.deleted:
        raise AdminError(f"no such user: {user}")
    return u


def user_passwd(store, user, pw_hash, sign_out):
    account(store, user)
    write(store, SetPasswordHash(user, pw_hash))
    return logout(store, user) if sign_out else []


def user_disable(store, user, disabled):
    account(store, user)
    write(store, SetDisabled(user, disabled))


def user_delete(store, data, user):
    with exclusive(data, "deleting an account changes memberships the server keeps in memory"):
        account(store, user)
        return write(store, DeleteAccount(user))


# --- devices


def sessions(store, user):
    account(store, user)
    with store.read() as r:
        head = r.inbox_head(user)
        subs = {d for d, _ in r.push_subscriptions(user)}
        rows = []
        for device in r.devices(user):
            cursor = r.cursor(user, device) or 0
            rows.append((device, _when(r.device_seen(user, device)), f"{cursor}/{head}",
                         "yes" if device in subs else "no"))
    return _table(rows, ("DEVICE", "LAST SEEN", "READ/INBOX", "PUSH"))


def logout(store, user, device=None):
    """Revokes the tokens (and drops the push subscription) of one device or all -> devices."""
    account(store, user)
    with store.read() as r:
        devices = r.devices(user)
    if device is not None:
        if device not in devices:
            raise AdminError(f"{user} has no device {device!r} (see chatsrv sessions {user})")
        devices = [device]

    def op(w):
        for d in devices:
            RevokeDevice(user, d)(w)
            DeletePushSub(user, d)(w)
        return devices

    return write(store, op)


# --- the data directory


def _disk_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def stats(store, data):
    c = store.counts()
    use = store.usage()
    with store.read() as r:
        accounts = [u for _, u in r.users()]
    active = sum(1 for u in accounts if not u.disabled and not u.deleted)
    disabled = sum(1 for u in accounts if u.disabled and not u.deleted)
    deleted = sum(1 for u in accounts if u.deleted)
    pct = 100.0 * use["map_used"] / use["map_size"] if use["map_size"] else 0.0
    return "\n".join([
        f"users:          {active} active, {disabled} disabled, {deleted} deleted",
        f"conversations:  {c['conversations']}",
        f"messages:       {c['messages']} ({c['inbox_entries']} inbox entries)",
        f"data size:      {_size(_disk_bytes(data))} on disk in {data}",
        f"map use:        {_size(use['map_used'])} of {_size(use['map_size'])} ({pct:.1f}%)",
    ])


def check(store, progress=True, limit=20):
    """Verifies the invariants: each conversation's seqs are 1..N without a gap, each
    user's inbox positions are 1..N without a gap and every entry points at a stored
    message, no message without its conversation, no device cursor past its inbox head.
    -> the problems found (at most `limit` described, then a count)."""
    problems, extra = [], 0

    def problem(text):
        nonlocal extra
        if len(problems) < limit:
            problems.append(text)
        else:
            extra += 1

    counts = store.counts()
    convs = {conv for conv, _ in store.walk("conversations")}
    p = Progress("messages checked", counts["messages"]) if progress else None
    last_conv, last_seq = None, 0
    for conv, seq in store.walk("messages"):
        if conv != last_conv:
            if conv not in convs:
                problem(f"messages of {conv}, which is not a conversation")
            last_conv, last_seq = conv, 0
        if seq != last_seq + 1:
            problem(f"{conv}: seq {seq} follows {last_seq}")
        last_seq = seq
        if p:
            p.tick()
    if p:
        p.done()
    p = Progress("inbox entries checked", counts["inbox_entries"]) if progress else None
    heads, last_user, last_pos = {}, None, 0
    for user, pos, conv, seq, exists in store.walk("inboxes"):
        if user != last_user:
            last_user, last_pos = user, 0
        if pos != last_pos + 1:
            problem(f"inbox of {user}: position {pos} follows {last_pos}")
        if not exists:
            problem(f"inbox of {user}: position {pos} points at {conv} seq {seq}, which is not stored")
        last_pos = heads[user] = pos
        if p:
            p.tick()
    if p:
        p.done()
    for user, device, cursor in store.walk("cursors"):
        if cursor > heads.get(user, 0):
            problem(f"device {device} of {user}: cursor {cursor} is past the inbox head {heads.get(user, 0)}")
    if extra:
        problems.append(f"... and {extra} more")
    return problems


def restore(backup, data, force=False):
    """Copies a backup (a directory `chatsrv backup` made) into the data directory, holding
    its lock (the server must be stopped). A data directory that holds a database is
    refused, or with force its files are moved aside into DATA/replaced-<time>/ first (inside
    the directory, which the service user may write) -> that directory (or None)."""
    if not datadir.has_database(backup):
        raise AdminError(f"{backup} is not a chatsrv backup (no {datadir.DB_DIR}/data.mdb)")
    os.makedirs(data, mode=0o700, exist_ok=True)
    with exclusive(data, "a restore replaces the database under it"):
        aside = None
        if datadir.has_database(data):
            if not force:
                raise AdminError(f"{data} already holds a database; --force moves it aside first")
            aside = os.path.join(data, "replaced-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
            os.mkdir(aside, 0o700)
            for name in os.listdir(data):
                if name != datadir.LOCK_NAME and not name.startswith("replaced-"):
                    os.rename(os.path.join(data, name), os.path.join(aside, name))
        _copy_tree(backup, data)
    return aside


def _copy_tree(src_dir, dst_dir):
    files = [os.path.relpath(os.path.join(root, f), src_dir) for root, _, fs in os.walk(src_dir) for f in fs]
    files = sorted(f for f in files if os.path.basename(f) != datadir.LOCK_NAME)
    p = Progress("bytes copied", sum(os.path.getsize(os.path.join(src_dir, f)) for f in files))
    for rel in files:
        src, dst = os.path.join(src_dir, rel), os.path.join(dst_dir, rel)
        os.makedirs(os.path.dirname(dst), mode=0o700, exist_ok=True)
        with open(src, "rb") as fin, open(dst, "xb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
                p.tick(len(chunk))
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copymode(src, dst)
    p.done()
