"""The data directory as a whole: who may use it. A server holds an exclusive
`flock` on `DATA/chatsrv.lock` for as long as it runs, so a second server on the
same directory refuses to start instead of assigning the same seqs as the first
(which loses acknowledged messages). The kernel drops the lock when the process
ends, however it ends, so a crash never leaves a stale lock behind.

Offline tools ask `in_use()` to refuse what is unsafe beside a running server.
This module never opens the database.
"""
import errno
import fcntl
import os

LOCK_NAME = "chatsrv.lock"
DB_DIR = "db"


class InUse(Exception):
    """Another process holds the data directory's lock."""

    def __init__(self, path, pid):
        self.path = path
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"data directory {path} is in use by another chatsrv server{who}")


class NoDatabase(Exception):
    def __init__(self, path):
        self.path = path
        super().__init__(f"no chatsrv database in {path} (start `chatsrv serve --data {path}` once to create one)")


def make_private(path):
    """Creates path if needed; it and the folders in it become 0700, their files 0600
    (messages, password hashes and keys are the owner's alone, whatever the umask, and
    also in a directory an older version left readable). Symlinks are left alone."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o700)
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, 0o600)


def has_database(path):
    return os.path.exists(os.path.join(path, DB_DIR, "data.mdb"))


def require_database(path):
    """Raises NoDatabase unless path holds a chatsrv database: tools must not create an empty one."""
    if not has_database(path):
        raise NoDatabase(path)


def _read_pid(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


class Lock:
    """The exclusive lock of one data directory, held until release() or process exit."""

    def __init__(self, path):
        self.path = path
        self._fd = None

    def acquire(self):
        """Takes the lock or raises InUse at once (never waits)."""
        fd = os.open(os.path.join(self.path, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            pid = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise InUse(self.path, pid) from None
            raise
        # the pid is only for the message a second server prints; the flock is the lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def in_use(path):
    """The pid (or -1 when unknown) of the server holding path's lock, else 0."""
    try:
        fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return _read_pid(fd) or -1
            raise
        return 0
    finally:
        os.close(fd)
