"""Short-lived signed download URLs: `/files/ID?u=USER&e=EXPIRY&s=SIG` (and
`/files/ID/thumb?...`), where SIG is an HMAC-SHA256 over the file id, the user it
was issued to and the expiry, under a key kept in the data directory (mode 0600).
A browser can put it in `<img src>`: the login token never appears in a URL, and a
leaked URL stops working at its expiry.

A valid signature says only who asked and until when: the server still checks on
every download that this user may read this file now. Never logs a URL or the key.
"""
import base64
import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import parse_qs, quote

KEY_FILE = "files.key"
PREFIX = "/files/"


def load_key(data_dir):
    """The signing key: made on first start, kept in DATA/files.key with mode 0600
    (a wider mode found at start is narrowed)."""
    path = os.path.join(data_dir, KEY_FILE)
    try:
        with open(path, "rb") as f:
            key = f.read()
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Links:
    def __init__(self, key, ttl):
        self.key = key
        self.ttl = ttl          # seconds a URL stays valid

    def _sig(self, file_id, user, expiry):
        msg = b"\0".join((b"chatsrv-file-v1", file_id.encode(), user.encode(), str(expiry).encode()))
        return hmac.new(self.key, msg, hashlib.sha256).digest()

    def url(self, file_id, user, thumb=False, now=None):
        """A URL for user to download file_id (its thumbnail with thumb), and its expiry
        in seconds since the epoch."""
        expiry = int(now if now is not None else time.time()) + max(1, int(self.ttl))
        path = PREFIX + file_id + ("/thumb" if thumb else "")
        sig = _b64(self._sig(file_id, user, expiry))
        return f"{path}?u={quote(user)}&e={expiry}&s={sig}", expiry

    def verify(self, path, query, now=None):
        """(file_id, thumb, user) for a request of path?query with a valid signature that
        has not expired, else None; nothing tells a bad signature from an expired one."""
        if not path.startswith(PREFIX):
            return None
        rest = path[len(PREFIX):]
        thumb = rest.endswith("/thumb")
        file_id = rest[:-len("/thumb")] if thumb else rest
        if not file_id or "/" in file_id or len(file_id) > 64:
            return None
        try:
            q = parse_qs(query, strict_parsing=True, max_num_fields=8)
            (user,), (expiry,), (sig,) = q["u"], q["e"], q["s"]
            expiry = int(expiry)
            given = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        except (KeyError, ValueError):
            return None
        want = self._sig(file_id, user, expiry)
        # compared before the expiry so that both refusals cost the same
        good = hmac.compare_digest(given, want)
        if not good or expiry < (now if now is not None else time.time()):
            return None
        return file_id, thumb, user
