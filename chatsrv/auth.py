"""Credentials: argon2id password hashes (verified off the loop), opaque tokens kept
only as a keyed hash, and the throttle on failed logins. Never logs a secret."""
import asyncio
import collections
import concurrent.futures
import hashlib
import hmac
import os
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


def load_secret(data_dir, name="token.key"):
    """The server's token key: made on first start, kept in the data dir with mode 0600."""
    path = os.path.join(data_dir, name)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


class Passwords:
    """argon2id in one worker thread: a verify costs tens of ms and must not stall the loop."""

    def __init__(self, time_cost=2, memory_cost=19456, parallelism=1):
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chatsrv-argon2")
        # Verifying against this when the user does not exist keeps the timing the same.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password):
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.hasher.hash, password)

    def _verify(self, stored, password):
        try:
            self.hasher.verify(stored or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, None
        if stored is None:
            return False, None
        return True, (self.hasher.hash(password) if self.hasher.check_needs_rehash(stored) else None)

    async def verify(self, stored, password):
        """(ok, new hash or None); new hash when the stored one has weaker parameters."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._verify, stored, password)

    def close(self):
        self.pool.shutdown(wait=True)


class Tokens:
    """Tokens are `selector.verifier`: the selector (96 bits) finds the row, the
    verifier (256 bits) is checked against its stored HMAC-SHA256 in constant time.
    Only the selector and the HMAC are stored, so a copy of the database gives no token."""

    def __init__(self, key):
        self.key = key

    def new(self):
        """(token, selector, mac) for a fresh token."""
        selector = secrets.token_urlsafe(12)
        verifier = secrets.token_urlsafe(32)
        return f"{selector}.{verifier}", selector.encode(), self._mac(verifier)

    def _mac(self, verifier):
        return hmac.new(self.key, verifier.encode(), hashlib.sha256).digest()

    @staticmethod
    def selector(token):
        """The selector of a well-formed token, else None."""
        sel, dot, ver = token.partition(".")
        return sel.encode() if dot and len(sel) == 16 and len(ver) == 43 else None

    def check(self, token, mac):
        return hmac.compare_digest(self._mac(token.partition(".")[2]), mac)


class Throttle:
    """Counts login attempts per key in a sliding window; `blocked` once a key reaches its limit.

    An attempt counts from the moment it is admitted, before its hash is checked, so that
    simultaneous attempts cannot all pass the check; a successful one is forgiven."""

    def __init__(self, limit, window):
        self.limit = limit
        self.window = window
        self._tries = collections.defaultdict(collections.deque)

    def _trim(self, key, now):
        q = self._tries.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._tries[key]
            return None
        return q

    def blocked(self, key):
        q = self._trim(key, time.monotonic())
        return q is not None and len(q) >= self.limit

    def attempt(self, key):
        """Counts an attempt; returns its stamp, for `forgive`."""
        now = time.monotonic()
        self._trim(key, now)
        self._tries[key].append(now)
        return now

    def forgive(self, key, stamp):
        """The attempt made at `stamp` succeeded: it no longer counts (if still in the window)."""
        q = self._tries.get(key)
        if q is not None:
            try:
                q.remove(stamp)
            except ValueError:
                return
            if not q:
                del self._tries[key]
