"""A Web Push service stand-in on 127.0.0.1, for the push tests and the browser's
notification tests: each subscription is a real P-256 key pair and auth secret; every
push is checked (VAPID JWT verified, body decrypted with the subscriber's keys: real
crypto over a real socket) and kept for the test to read."""
import asyncio
import base64
import http.server
import os
import re
import threading
import time
import uuid

import http_ece
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ----------------------------------------------------------------------------- the stand-in
class PushService:
    """A Web Push service stand-in. Each subscription is a path /push/<sid> with a mode:
    "ok" (201), "gone" (410), "hang" (answers nothing until released or 10 s), "failN" (503 for
    the first N), "redirect:SID" (307 to that subscription)."""

    def __init__(self):
        self.subs = {}          # sid -> {"priv", "auth", "mode"}
        self.received = {}      # sid -> [push dict]
        self.errors = []        # verification failures
        self.hanging = 0        # requests being held now
        self.hang_started = 0
        self.release = threading.Event()
        self.cv = threading.Condition()
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                sid = self.path.rsplit("/", 1)[-1]
                status = svc.handle(sid, dict(self.headers.items()), body)
                if status is None:
                    return
                location = None
                if type(status) is tuple:
                    status, location = status
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def subscription(self, mode="ok"):
        """A new subscriber: a real P-256 key pair and a 16-byte auth secret."""
        priv = ec.generate_private_key(ec.SECP256R1())
        pub = priv.public_key().public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)
        auth = os.urandom(16)
        sid = uuid.uuid4().hex
        with self.cv:
            self.subs[sid] = {"priv": priv, "auth": auth, "mode": mode}
            self.received[sid] = []
        return sid, {"endpoint": f"http://127.0.0.1:{self.port}/push/{sid}",
                     "keys": {"p256dh": b64url(pub), "auth": b64url(auth)}}

    def handle(self, sid, headers, body):
        h = {k.lower(): v for k, v in headers.items()}
        sub = self.subs.get(sid)
        if sub is None:
            return 404
        rec = {"headers": h}
        try:
            m = re.fullmatch(r"vapid t=([^,]+),k=([A-Za-z0-9_-]+)", h.get("authorization", ""))
            assert m, f"no VAPID Authorization header: {h.get('authorization')!r}"
            rec["k"] = m.group(2)
            rec["claims"] = vapid_jwt.decode(m.group(1), m.group(2))   # raises on a bad signature
            assert h.get("content-encoding") == "aes128gcm", h
            plain = http_ece.decrypt(body, private_key=sub["priv"], auth_secret=sub["auth"], version="aes128gcm")
            rec["plain_len"] = len(plain)
            rec["payload"] = orjson.loads(plain)
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self.cv:
                self.errors.append(f"{sid}: {e!r}")
                self.cv.notify_all()
            return 400
        with self.cv:
            self.received[sid].append(rec)
            self.cv.notify_all()
        mode = sub["mode"]
        if mode == "gone":
            return 410
        if mode.startswith("redirect:"):   # "redirect:SID": 307 to that subscription's path
            return 307, f"http://127.0.0.1:{self.port}/push/{mode[9:]}"
        if mode.startswith("fail"):      # "failN": 503 for the first N requests, then 201
            return 503 if len(self.received[sid]) <= int(mode[4:]) else 201
        if mode == "hang":
            with self.cv:
                self.hanging += 1
                self.hang_started += 1
            self.release.wait(10)
            with self.cv:
                self.hanging -= 1
            return None
        return 201

    def pushes(self, sid):
        with self.cv:
            return list(self.received[sid])

    async def wait(self, sid, n=1, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.pushes(sid)
            if len(got) >= n or self.errors:
                break
            await asyncio.sleep(0.02)
        assert not self.errors, self.errors
        got = self.pushes(sid)
        assert len(got) >= n, f"expected {n} push(es) for {sid}, got {len(got)}"
        return got


@pytest.fixture(scope="module")
def pushsvc():
    """A PushService for a test module (import it into the module to use it)."""
    svc = PushService()
    yield svc
    svc.close()
