"""Push notifications: Web Push (RFC 8030) with aes128gcm payloads (RFC 8291) and VAPID
(RFC 8292), through pywebpush / py-vapid / http_ece.

Who runs what:
- the loop thread calls `on_message` once per committed message and `on_read` once per
  read; each does one Cython call (`Router.offline`) and one enqueue, nothing more;
- worker threads (`--push-workers`) take jobs from a bounded in-memory queue (the oldest
  is dropped, and counted, when it is full), look up subscriptions and mutes in short
  LMDB read transactions, build and encrypt the payload, sign VAPID (cached per push
  service origin) and POST it; failures are retried with bounded exponential backoff;
- subscription and mute writes, and the deletion of a subscription the push service
  says is gone (404/410), go through the store's single writer like every other write.

Nothing here blocks the event loop or the writer.
"""
import base64
import collections
import hashlib
import heapq
import ipaddress
import itertools
import logging
import os
import random
import socket
import threading
import time
from urllib.parse import urlsplit

import orjson

from .config import vapid_subject_ok as subject_ok
from .domain.pushsubs import DeletePushSub
from .store import now_ms

log = logging.getLogger("chatsrv.push")

MAX_PAYLOAD = 3900          # plaintext bytes; aes128gcm in one 4096-byte record allows 3993
KEY_FILE = "vapid_private.pem"
VAPID_LIFETIME = 12 * 3600  # seconds a signed VAPID JWT is valid (RFC 8292: at most 24 h)
VAPID_REFRESH = 3600        # re-sign this long before expiry
RETRY_MAX_DELAY = 300.0     # backoff cap, seconds
ELLIPSIS = "\u2026"

# every outcome counted in /metrics as chatsrv_push_total{outcome=...}
OUTCOMES = (
    "queued",           # a job (one message or read) entered the queue
    "sent",             # the push service accepted a push (2xx)
    "gone",             # 404/410: the subscription was deleted
    "retried",          # a failure (network, timeout, 429, 5xx) scheduled for another try
    "failed",           # gave up after --push-retries retries
    "rejected",         # another 3xx/4xx answer (not retried)
    "dropped",          # the queue was full: the oldest job or push was dropped
    "muted",            # a recipient had muted the conversation
    "online",           # every recipient was connected (after the grace)
    "no_subscription",  # a recipient had no subscription
    "logged_out",       # a subscription whose device has no token left (deleted)
    "disabled",         # no --vapid-subject: nothing sent
    "system",           # a system message, not pushed (see --push-system)
    "blocked",          # the endpoint's name resolved to a loopback, private or reserved address
    "error",            # an unexpected error (a bug; logged)
    "abandoned",        # still queued at shutdown
)


# --- pure helpers (unit-tested without sockets)


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def topic(account, conv):
    """The Topic header for a conversation of an account: at most 32 characters of the
    URL-safe base64 alphabet (RFC 8030 5.4), so a hash, not the conv id itself."""
    return b64url(hashlib.sha256(account.encode() + b"\0" + conv.encode()).digest())[:32]


def msg_payload(account, conv, seq, sender, ts, unread, body=None, sys=None, limit=MAX_PAYLOAD):
    """The JSON of a `msg` push, under `limit` bytes: the body is cut (at a character
    boundary, ending in an ellipsis, with "cut": true) when the whole would not fit."""
    p = {"type": "msg", "account": account, "conv": conv, "seq": seq, "from": sender, "ts": ts,
         "unread": unread}
    if sys is not None:
        p["sys"] = sys
        out = orjson.dumps(p)
        if len(out) > limit:
            p["sys"] = None
            out = orjson.dumps(p)
        return out
    p["body"] = body
    out = orjson.dumps(p)
    if len(out) <= limit:
        return out
    p["cut"] = True
    lo, hi = 0, len(body)      # the longest prefix that fits lies in [lo, hi)
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        p["body"] = body[:mid] + ELLIPSIS
        if len(orjson.dumps(p)) <= limit:
            lo = mid
        else:
            hi = mid
    p["body"] = body[:lo] + ELLIPSIS
    out = orjson.dumps(p)
    if len(out) > limit:       # only when the fixed fields alone are too big
        p["body"] = ""
        out = orjson.dumps(p)
    return out


def read_payload(account, conv, seq, unread):
    return orjson.dumps({"type": "read", "account": account, "conv": conv, "seq": seq, "unread": unread})



def origin(endpoint):
    u = urlsplit(endpoint)
    return f"{u.scheme}://{u.netloc}"


def backoff(attempt, base, retry_after=None):
    """Seconds before retry number `attempt` (1, 2, ...): base * 2^(attempt-1) with
    jitter, at least Retry-After when the push service gave one, capped."""
    d = base * (2 ** (attempt - 1)) * random.uniform(0.75, 1.25)
    if retry_after is not None:
        d = max(d, retry_after)
    return min(d, RETRY_MAX_DELAY)


def parse_retry_after(v):
    if v is None:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None   # an HTTP date: ignored, the backoff applies


# --- the VAPID key pair


def load_vapid(data_dir):
    """The server's VAPID key: generated on first start and kept in the data directory
    as PEM with mode 0600 (a wider mode found at start is narrowed)."""
    from cryptography.hazmat.primitives import serialization
    from py_vapid import Vapid

    path = os.path.join(data_dir, KEY_FILE)
    try:
        with open(path, "rb") as f:
            pem = f.read()
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            log.warning("%s had mode %o; setting 0600", path, mode)
            os.chmod(path, 0o600)
        return Vapid.from_pem(pem)
    except FileNotFoundError:
        pass
    v = Vapid()
    v.generate_keys()
    pem = v.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    log.info("generated a VAPID key pair in %s", path)
    return v


def public_key(vapid):
    """The application server key as PushManager.subscribe wants it: the uncompressed
    P-256 point, base64url without padding."""
    from cryptography.hazmat.primitives import serialization

    return b64url(vapid.public_key.public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))


def unread_total(r, user):
    """Unread messages over all the user's conversations (the badge count), reader r."""
    total = 0
    for conv, m in r.memberships(user):
        if m.active:
            total += max(0, r.last_seq(conv) - r.read_seq(user, conv))
    return total


# --- the sender


class Job:
    """One committed message (kind "msg": `record` is its stored `"conv":...}` tail, decoded
    in the worker) or read (kind "read") to turn into pushes for `users`."""

    __slots__ = ("kind", "users", "record", "conv", "seq", "device", "skip", "due")

    def __init__(self, kind, users, record=None, conv=None, seq=0, device=None, skip=()):
        self.kind = kind
        self.users = users
        self.record = record
        self.conv = conv
        self.seq = seq
        self.device = device
        self.skip = skip      # devices of a read that are connected (they get the read live)
        self.due = 0.0


class Blocked(Exception):
    """The push service's name resolves to an address the server must not post to."""


class PushHTTP:
    """POSTs to push services. The host is resolved here, at send time, every address it has
    is checked (unless --push-allow-http), and the connection goes to the checked address
    itself, so a name that resolves inward, or a DNS answer that changes between the check
    and the connect, cannot aim the server at its own network. Redirects are not followed.
    One instance per worker thread (its connection pools are not shared)."""

    MAX_POOLS = 64

    def __init__(self, allow_private, timeout, resolve=socket.getaddrinfo, ca_certs=None):
        self.allow_private = allow_private
        self.timeout = timeout
        self.resolve = resolve
        self.ca_certs = ca_certs      # None: certifi's bundle, as requests uses
        self._pools = {}

    def address(self, host, port):
        """The address to connect to for host, or Blocked."""
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        infos = self.resolve(host, port, 0, socket.SOCK_STREAM)
        addrs = [info[4][0] for info in infos]
        if not addrs:
            raise OSError(f"{host} has no address")
        if not self.allow_private:
            for a in addrs:
                ip = ipaddress.ip_address(a.split("%", 1)[0])
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                if not ip.is_global:
                    raise Blocked(f"{host} resolves to {a}, which is not a public address")
        return addrs[0]

    def _pool(self, scheme, ip, port, host):
        import urllib3

        key = (scheme, ip, port, host)
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) >= self.MAX_POOLS:
                for old in self._pools.values():
                    old.close()
                self._pools.clear()
            if scheme == "https":
                import certifi

                # the TLS name (SNI and the certificate check) stays the endpoint's host
                pool = urllib3.HTTPSConnectionPool(ip, port, maxsize=1, retries=False,
                                                   server_hostname=host, assert_hostname=host,
                                                   cert_reqs="CERT_REQUIRED",
                                                   ca_certs=self.ca_certs or certifi.where())
            else:
                pool = urllib3.HTTPConnectionPool(ip, port, maxsize=1, retries=False)
            self._pools[key] = pool
        return pool

    def post(self, url, body, headers):
        """(status, Retry-After header or None); Blocked, or OSError / urllib3's HTTPError
        for network failures."""
        import urllib3

        u = urlsplit(url)
        host = u.hostname
        port = u.port or (443 if u.scheme == "https" else 80)
        ip = self.address(host, port)
        default = (u.scheme == "https" and port == 443) or (u.scheme == "http" and port == 80)
        name = f"[{host}]" if ":" in host else host
        headers = dict(headers, Host=name if default else f"{name}:{port}")
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        t = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        r = self._pool(u.scheme, ip, port, host).urlopen(
            "POST", path, body=body, headers=headers, redirect=False, retries=False, timeout=t,
            preload_content=False)
        try:
            r.read(65536, decode_content=False)     # bounded: never a big body
            return r.status, r.headers.get("Retry-After")
        finally:
            r.release_conn()


class Delivery:
    """One encrypted push to one subscription."""

    __slots__ = ("user", "device", "endpoint", "keys", "payload", "topic", "urgency", "attempt")

    def __init__(self, user, device, sub, payload, topic_, urgency):
        self.user = user
        self.device = device
        self.endpoint = sub.endpoint
        self.keys = {"p256dh": sub.p256dh, "auth": sub.auth}
        self.payload = payload
        self.topic = topic_
        self.urgency = urgency
        self.attempt = 0


class Push:
    def __init__(self, cfg, store, writer, router, loop):
        self.cfg = cfg
        self.store = store
        self.writer = writer
        self.router = router
        self.loop = loop
        self.vapid = load_vapid(cfg.data)
        self.public_key = public_key(self.vapid)
        self.subject = cfg.vapid_subject
        self.enabled = False
        if not cfg.vapid_subject:
            # a server without push is a valid choice: said once, at start, as information
            log.info("push notifications off: no --vapid-subject (vapid_subject, a mailto: or https: URL "
                     "identifying you to push services); devices' subscriptions are kept for when it is set")
        elif not subject_ok(cfg.vapid_subject) or not self._sign_test():
            log.warning("push notifications are OFF: --vapid-subject %r is not a mailto: address or an "
                        "https: URL", cfg.vapid_subject)
        else:
            self.enabled = True
        if cfg.push_allow_http:
            log.warning("--push-allow-http: push endpoints may be http: and on private addresses")
        self.limit = max(1, cfg.push_queue)
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.http_seconds = 0.0
        self._count_lock = threading.Lock()
        self._cv = threading.Condition()
        self._ready = collections.deque()     # Jobs and Deliveries, oldest first
        self._delayed = []                    # heap of (due, n, Delivery): retries
        self._n = itertools.count()
        self._grace = collections.deque()     # loop thread only: Jobs waiting for the grace
        self._grace_timer = None
        self._vapid_cache = {}
        self._vapid_lock = threading.Lock()
        self._stopping = False
        self._threads = []
        self._local = threading.local()
        self.resolve = socket.getaddrinfo     # replaced by tests that need a name to resolve a set way

    def _sign_test(self):
        try:
            self.vapid.sign({"sub": self.subject, "aud": "https://push.example.net"})
            return True
        except Exception:
            return False

    # --- life

    def start(self):
        for i in range(max(1, self.cfg.push_workers)):
            t = threading.Thread(target=self._run, name=f"chatsrv-push-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def cancel_grace(self):
        """Loop thread, at shutdown before stop(): no more jobs out of the grace period."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        self._count("abandoned", len(self._grace))
        self._grace.clear()

    def stop(self, timeout=2.0):
        """Stops the workers (what is still queued is abandoned and counted). Waits at most
        `timeout` for a push in flight; the threads are daemons, so a hung push service
        cannot hold the process. Any thread (the server calls it off the loop)."""
        with self._cv:
            self._stopping = True
            n = len(self._ready) + len(self._delayed)
            self._ready.clear()
            self._delayed.clear()
            self._cv.notify_all()
        self._count("abandoned", n)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def idle(self):
        """True when no worker holds the LMDB environment (safe to close the store)."""
        return not any(t.is_alive() for t in self._threads)

    def _count(self, outcome, n=1):
        with self._count_lock:
            self.counts[outcome] += n

    def queued(self):
        return len(self._ready) + len(self._delayed) + len(self._grace)

    # --- the loop side: one call per committed message or read

    def on_message(self, members, record):
        """A message was committed and fanned out to `members` (`record`: its stored
        `"conv":...}` tail): queue one job for the members with no connected device. Runs
        on the loop thread: one Cython call and one enqueue; the sender, system messages
        and mutes are sorted out by the worker."""
        users = self.router.offline(members)
        if not users:
            return
        if not self.enabled:
            self._count("disabled")
            return
        job = Job("msg", users, record)
        if self.cfg.push_grace > 0:
            self._defer(job)
        else:
            self._enqueue(job)

    def on_read(self, user, device, conv, seq):
        """`user` read `conv` up to `seq` on `device`: tell the user's other subscribed
        devices that are not connected, so they can clear the notification. Loop thread."""
        if not self.enabled:
            return
        skip = {device}
        for c in self.router.conns_of(user):
            skip.add(c.device)
        self._enqueue(Job("read", [user], conv=conv, seq=seq, device=device, skip=skip))

    def _defer(self, job):
        job.due = self.loop.time() + self.cfg.push_grace
        if len(self._grace) >= self.limit:
            self._grace.popleft()
            self._count("dropped")
        self._grace.append(job)
        if self._grace_timer is None:
            self._grace_timer = self.loop.call_at(self._grace[0].due, self._after_grace)

    def _after_grace(self):
        self._grace_timer = None
        now = self.loop.time()
        g = self._grace
        while g and g[0].due <= now:
            job = g.popleft()
            job.users = self.router.offline(job.users)
            if job.users:
                self._enqueue(job)
            else:
                self._count("online")
        if g and not self._stopping:
            self._grace_timer = self.loop.call_at(g[0].due, self._after_grace)

    def _enqueue(self, item, count=True):
        """Any thread. Appends to the bounded queue; when full, drops the oldest."""
        dropped = 0
        with self._cv:
            if self._stopping:
                return
            while len(self._ready) + len(self._delayed) >= self.limit:
                if self._ready:
                    self._ready.popleft()
                else:
                    heapq.heappop(self._delayed)
                dropped += 1
            self._ready.append(item)
            self._cv.notify()
        if dropped:
            self._count("dropped", dropped)
        if count and isinstance(item, Job):
            self._count("queued")

    def _retry_later(self, d, delay):
        with self._cv:
            if self._stopping:
                return
            if len(self._ready) + len(self._delayed) >= self.limit:
                dropped = True
            else:
                dropped = False
                heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._n), d))
                self._cv.notify()
        self._count("dropped" if dropped else "retried")

    # --- the workers

    def _next(self):
        with self._cv:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    self._ready.append(heapq.heappop(self._delayed)[2])
                if self._ready:
                    return self._ready.popleft()
                self._cv.wait(self._delayed[0][0] - now if self._delayed else None)

    def _run(self):
        while True:
            item = self._next()
            if item is None:
                return
            try:
                if isinstance(item, Job):
                    self._expand(item)
                else:
                    self._deliver(item)
            except Exception:
                self._count("error")
                log.exception("push failed")

    def _expand(self, job):
        """A job to deliveries: subscriptions, mutes and the badge count, read in one short
        read transaction (never held across HTTP)."""
        store = self.store
        out, stale = [], []
        now = now_ms()
        users = job.users
        if job.kind == "msg":
            m = orjson.loads(b"{" + job.record)
            if "sys" in m and not self.cfg.push_system:
                self._count("system")
                return
            job.conv, job.seq = m["conv"], m["seq"]
            users = [u for u in users if u != m["from"]]     # never to the sender
        with store.read() as r:
            for user in users:
                subs = r.push_subscriptions(user)
                if job.kind == "read":
                    subs = [(d, s) for d, s in subs if d not in job.skip]
                if not subs:
                    self._count("no_subscription")
                    continue
                if job.kind == "msg" and r.muted_until(user, job.conv) > now:
                    self._count("muted")
                    continue
                unread = unread_total(r, user)
                if job.kind == "msg":
                    payload = msg_payload(user, job.conv, job.seq, m["from"], m["ts"], unread,
                                          body=m.get("body"), sys=m.get("sys"))
                    urgency = "high"
                else:
                    payload = read_payload(user, job.conv, job.seq, unread)
                    urgency = "normal"
                t = topic(user, job.conv)
                for device, sub in subs:
                    if not r.device_tokens(user, device):
                        stale.append((user, device, sub.endpoint))
                        continue
                    out.append(Delivery(user, device, sub, payload, t, urgency))
        for user, device, endpoint in stale:
            # the device logged out: its notifications must stop (they carry message text)
            self._count("logged_out")
            self._delete(user, device, endpoint)
        if len(out) == 1:
            self._deliver(out[0])
        else:
            for d in out:
                self._enqueue(d)

    def _delete(self, user, device, endpoint):
        try:
            self.writer.submit(DeletePushSub(user, device, endpoint), lambda r, e: None)
        except RuntimeError:
            pass    # shutting down

    def _http(self):
        h = getattr(self._local, "http", None)
        if h is None:
            h = self._local.http = PushHTTP(self.cfg.push_allow_http, self.cfg.push_timeout, self.resolve)
        return h

    def _vapid_headers(self, endpoint):
        """The Authorization header for a push service origin, signed once and reused
        until shortly before it expires (a fresh claims dict per origin)."""
        o = origin(endpoint)
        now = time.time()
        with self._vapid_lock:
            hit = self._vapid_cache.get(o)
            if hit is not None and hit[0] - VAPID_REFRESH > now:
                return hit[1]
        exp = int(now) + VAPID_LIFETIME
        headers = self.vapid.sign({"sub": self.subject, "aud": o, "exp": exp})
        with self._vapid_lock:
            self._vapid_cache[o] = (exp, headers)
        return headers

    def _deliver(self, d):
        from pywebpush import WebPusher
        from urllib3.exceptions import HTTPError

        cfg = self.cfg
        body = WebPusher({"endpoint": d.endpoint, "keys": d.keys}).encode(d.payload, "aes128gcm")["body"]
        headers = {"Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
                   "TTL": str(cfg.push_ttl), "Urgency": d.urgency, "Topic": d.topic}
        headers.update(self._vapid_headers(d.endpoint))
        status = retry_after = None
        t0 = time.perf_counter()
        try:
            status, retry_after = self._http().post(d.endpoint, body, headers)
            retry_after = parse_retry_after(retry_after)
        except Blocked as e:
            self._count("blocked")
            log.warning("push to %s refused: %s (user=%s device=%s)", origin(d.endpoint), e, d.user, d.device)
            return
        except (OSError, HTTPError) as e:
            log.debug("push to %s failed: %s", origin(d.endpoint), e)
        finally:
            with self._count_lock:
                self.http_seconds += time.perf_counter() - t0
        if status is not None and 200 <= status < 300:
            self._count("sent")
        elif status in (404, 410):
            self._count("gone")
            log.info("push subscription gone (%d) user=%s device=%s: deleted", status, d.user, d.device)
            self._delete(d.user, d.device, d.endpoint)
        elif status is None or status == 429 or status >= 500:
            if d.attempt < cfg.push_retries:
                d.attempt += 1
                self._retry_later(d, backoff(d.attempt, cfg.push_retry_delay, retry_after))
            else:
                self._count("failed")
                log.info("push to %s failed after %d tries (last status %s)", origin(d.endpoint),
                         d.attempt + 1, status)
        else:
            self._count("rejected")
            log.warning("push service %s answered %d (user=%s device=%s)", origin(d.endpoint), status,
                        d.user, d.device)

    # --- metrics (read by metrics.Collector at scrape time)

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        c = CounterMetricFamily("chatsrv_push", "Push notification outcomes", labels=["outcome"])
        with self._count_lock:
            counts = dict(self.counts)
            secs = self.http_seconds
        for k in OUTCOMES:
            c.add_metric([k], counts[k])
        yield c
        s = CounterMetricFamily("chatsrv_push_http_seconds", "Time spent in push service requests")
        s.add_metric([], secs)
        yield s
        g = GaugeMetricFamily("chatsrv_push_queue", "Push jobs and retries waiting (incl. the grace)")
        g.add_metric([], self.queued())
        yield g
        e = GaugeMetricFamily("chatsrv_push_enabled", "1 when pushes are sent (--vapid-subject is set)")
        e.add_metric([], 1 if self.enabled else 0)
        yield e
