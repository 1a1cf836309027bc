"""Push notifications without sockets: payloads and truncation, topics, validation of
push_subscribe and mute, the VAPID key file, storage of subscriptions and mutes, and
the loop-side policy and bounded queue of chatsrv.push.Push."""
import base64
import os
import socket
import stat

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chatsrv import proto as P
from chatsrv import push
from chatsrv.config import Config
from chatsrv.proto import ProtocolError
from chatsrv.domain.pushsubs import DeletePushSub, PutPushSub, SetMute
from chatsrv.store.memory import MemoryStore


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keys():
    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"p256dh": b64url(pub), "auth": b64url(os.urandom(16))}


# ----------------------------------------------------------------------------- payloads
def test_msg_payload_fields():
    out = push.msg_payload("bob", "d:alice:bob", 3, "alice", 1700000000000, 4, body="hi")
    assert orjson.loads(out) == {"type": "msg", "account": "bob", "conv": "d:alice:bob", "seq": 3,
                                 "from": "alice", "ts": 1700000000000, "unread": 4, "body": "hi"}


def test_system_message_payload_carries_sys_not_body():
    p = orjson.loads(push.msg_payload("bob", "g:x", 1, "alice", 1, 0, sys={"joined": "carol"}))
    assert p["sys"] == {"joined": "carol"} and "body" not in p


@pytest.mark.parametrize("unit", ["a", "\u00e9", "\u4e16", "\U0001F600", '"', "\\", "\n", "\x01"])
def test_long_body_is_cut_under_the_limit(unit):
    body = unit * 20000
    out = push.msg_payload("bob", "d:alice:bob", 1, "alice", 1, 0, body=body)
    assert len(out) <= push.MAX_PAYLOAD
    p = orjson.loads(out)
    assert p["cut"] is True and p["body"].endswith(push.ELLIPSIS)
    kept = p["body"][:-1]
    assert body.startswith(kept)
    # as long as fits: one more character would not
    p2 = dict(p, body=body[:len(kept) + 1] + push.ELLIPSIS)
    assert len(orjson.dumps(p2)) > push.MAX_PAYLOAD


def test_body_that_fits_is_not_cut():
    base = len(push.msg_payload("bob", "d:alice:bob", 1, "alice", 1, 0, body=""))
    body = "x" * (push.MAX_PAYLOAD - base)
    out = push.msg_payload("bob", "d:alice:bob", 1, "alice", 1, 0, body=body)
    assert len(out) == push.MAX_PAYLOAD
    assert orjson.loads(out)["body"] == body and "cut" not in orjson.loads(out)
    out = push.msg_payload("bob", "d:alice:bob", 1, "alice", 1, 0, body=body + "y")
    assert len(out) <= push.MAX_PAYLOAD and orjson.loads(out)["cut"] is True


def test_cut_with_a_small_limit():
    out = push.msg_payload("bob", "d:alice:bob", 1, "alice", 1, 0, body="z" * 500, limit=150)
    assert len(out) <= 150


def test_read_payload():
    assert orjson.loads(push.read_payload("bob", "d:a:bob", 9, 0)) == {
        "type": "read", "account": "bob", "conv": "d:a:bob", "seq": 9, "unread": 0}


def test_topic_is_short_url_safe_and_per_account_and_conv():
    t = push.topic("bob", "d:alice:bob")
    assert len(t) <= 32 and all(c.isalnum() or c in "-_" for c in t)
    assert t == push.topic("bob", "d:alice:bob")
    assert t != push.topic("alice", "d:alice:bob") and t != push.topic("bob", "d:bob:carol")


def test_backoff_grows_is_capped_and_honours_retry_after():
    assert 0.75 <= push.backoff(1, 1.0) <= 1.25
    assert 3.0 <= push.backoff(3, 1.0) <= 5.0
    assert push.backoff(30, 1.0) == push.RETRY_MAX_DELAY
    assert push.backoff(1, 1.0, retry_after=20) >= 20
    assert push.backoff(1, 1.0, retry_after=10 ** 6) == push.RETRY_MAX_DELAY
    assert push.parse_retry_after("7") == 7.0
    assert push.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_subject():
    assert push.subject_ok("mailto:ops@example.com")
    assert push.subject_ok("https://chat.example.com/contact")
    for bad in ("", "ops@example.com", "mailto:nobody", "http://example.com", "https://", "mailto:a b@c"):
        assert not push.subject_ok(bad), bad


# ----------------------------------------------------------------------------- validation
def parse(obj):
    return P.Parser(16384).parse(orjson.dumps(obj))


def test_parse_push_subscribe():
    k = keys()
    req = parse({"id": 1, "op": "push_subscribe", "endpoint": "https://push.example.net/a/b?c=d",
                 "keys": dict(k, extra="ignored"), "expirationTime": None})
    assert req.endpoint == "https://push.example.net/a/b?c=d" and req.keys == k
    padded = {"p256dh": k["p256dh"] + "=" * (-len(k["p256dh"]) % 4), "auth": k["auth"] + "=="}
    assert parse({"id": 1, "op": "push_subscribe", "endpoint": "https://p.example/x", "keys": padded}).keys == k


@pytest.mark.parametrize("endpoint", [
    None, 1, "", "push.example.net/x", "ftp://push.example.net/x", "https:///x", "https://u:p@h.example/x",
    "https://h.example/x#f", "https://h.example:0/x", "https://h.example:70000/x", "https://h.example/\u00e9",
    "https://h.example/a b", "https://h.example/\n", "https://h.example/" + "a" * 2048,
])
def test_bad_endpoints(endpoint):
    with pytest.raises(ProtocolError) as e:
        parse({"id": 2, "op": "push_subscribe", "endpoint": endpoint, "keys": keys()})
    assert e.value.code == P.BAD_REQUEST and e.value.rid == 2


def bad_keys():
    k = keys()
    return [
        None, "x", [], {}, {"p256dh": k["p256dh"]}, {"auth": k["auth"]},
        dict(k, auth=b64url(os.urandom(12))), dict(k, auth="***"), dict(k, auth=5),
        dict(k, p256dh=b64url(os.urandom(65))), dict(k, p256dh=b64url(b"\x04" + b"\x00" * 64)),
        dict(k, p256dh=b64url(b"\x02" + os.urandom(32))), dict(k, p256dh="a" * 300),
    ]


@pytest.mark.parametrize("i", range(len(bad_keys())))
def test_bad_keys(i):
    with pytest.raises(ProtocolError) as e:
        parse({"id": 3, "op": "push_subscribe", "endpoint": "https://p.example/x", "keys": bad_keys()[i]})
    assert e.value.code == P.BAD_REQUEST


def test_endpoint_policy():
    ok = P.push_endpoint_policy
    assert ok("https://fcm.googleapis.com/fcm/send/abc", False) is None
    assert ok("https://8.8.8.8/x", False) is None
    for url in ("http://push.example.net/x", "https://127.0.0.1/x", "https://localhost/x", "https://a.localhost/x",
                "https://192.168.1.2/x", "https://10.0.0.1/x", "https://169.254.169.254/x", "https://[::1]/x",
                "https://[fe80::1]/x", "https://0.0.0.0/x"):
        assert ok(url, False) is not None, url
        assert ok(url, True) is None, url


def test_parse_mute_and_other_push_ops():
    r = parse({"id": 4, "op": "mute", "conv": "d:a:b", "until": 0})
    assert (r.conv, r.until) == ("d:a:b", 0)
    assert parse({"id": 5, "op": "mute", "conv": "d:a:b", "until": 2 ** 62}).until == 2 ** 62
    for bad in ({"conv": "d:a:b"}, {"until": 1}, {"conv": "d:a:b", "until": -1}, {"conv": "d:a:b", "until": True},
                {"conv": "d:a:b", "until": 2 ** 63}, {"conv": "", "until": 1}, {"conv": "d:a:b", "until": "1"}):
        with pytest.raises(ProtocolError):
            parse({"id": 6, "op": "mute", **bad})
    assert parse({"id": 7, "op": "push_key"}).needs_auth is False
    assert parse({"id": 8, "op": "push_unsubscribe"}).needs_auth is True


# ----------------------------------------------------------------------------- the key file
def test_vapid_key_generated_once_with_mode_0600(tmp_path):
    v = push.load_vapid(str(tmp_path))
    path = tmp_path / push.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = push.public_key(v)
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(raw) == 65 and raw[0] == 4
    assert push.public_key(push.load_vapid(str(tmp_path))) == key
    os.chmod(path, 0o644)
    assert push.public_key(push.load_vapid(str(tmp_path))) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ----------------------------------------------------------------------------- subscription ops
@pytest.fixture
def store():
    return MemoryStore(P.message_record)


def apply(store, *ops):
    with store.write() as w:
        return [op(w) for op in ops]


def test_subscriptions_and_mutes(store):
    k1, k2 = keys(), keys()
    apply(store, PutPushSub("bob", "phone", "https://a.example/1", k1),
          PutPushSub("bob", "laptop", "https://a.example/2", k2),
          PutPushSub("bobby", "phone", "https://a.example/3", k2),
          PutPushSub("bob", "phone", "https://a.example/4", k1),     # replaces
          SetMute("bob", "d:a:bob", 123))
    with store.read() as r:
        subs = dict(r.push_subscriptions("bob"))
        assert set(subs) == {"phone", "laptop"}
        assert subs["phone"].endpoint == "https://a.example/4" and subs["phone"].p256dh == k1["p256dh"]
        assert r.muted_until("bob", "d:a:bob") == 123
        assert r.muted_until("bob", "d:a:zed") == 0
    # a stale 410 for an endpoint that was since replaced deletes nothing
    assert apply(store, DeletePushSub("bob", "phone", "https://a.example/1"),
                 DeletePushSub("bob", "laptop", "https://a.example/2"), SetMute("bob", "d:a:bob", 0))[:2] == [False, True]
    with store.read() as r:
        assert [d for d, _ in r.push_subscriptions("bob")] == ["phone"]
        assert r.muted_until("bob", "d:a:bob") == 0


# ----------------------------------------------------------------------------- loop-side policy and queue
class FakeRouter:
    def __init__(self, online=(), conns=()):
        self.online = set(online)
        self.conns = list(conns)

    def offline(self, members):
        return [m for m in members if m not in self.online]

    def conns_of(self, user):
        return self.conns


def make_push(tmp_path, router, **kw):
    cfg = Config(data=str(tmp_path), vapid_subject=kw.pop("subject", "mailto:ops@example.com"), **kw)
    return push.Push(cfg, store=None, writer=None, router=router, loop=None)   # workers not started


def record(conv, seq, sender, body=None, sys=None):
    return P.message_record(conv, seq, sender, 1700000000000, body=body, cid="c1" if body else None, sys=sys)


def test_loop_side_queues_one_job_for_the_offline_members(tmp_path):
    p = make_push(tmp_path, FakeRouter(online={"carol"}))
    assert p.enabled
    p.on_message(["alice", "bob", "carol", "dave"], record("g:x", 1, "alice", "hi"))
    [job] = list(p._ready)
    assert job.kind == "msg" and job.users == ["alice", "bob", "dave"]
    p.on_message(["carol"], record("d:carol:zed", 1, "zed", "hi"))     # everyone online: nothing
    assert len(p._ready) == 1 and p.counts["queued"] == 1


@pytest.fixture
def wired(tmp_path, store):
    """A Push on a real store whose sending is captured instead of done."""
    p = make_push(tmp_path, FakeRouter())
    p.store = store
    sent = []
    p._deliver = sent.append
    p._enqueue = lambda d, count=True: sent.append(d)
    k = keys()
    with store.write() as w:
        for user in ("alice", "bob", "dave"):
            PutPushSub(user, "phone", f"https://push.example.net/{user}", k)(w)
            w.put_token(user, "phone", b"sel-" + user.encode(), b"mac")     # a live token
        PutPushSub("erin", "phone", "https://push.example.net/erin", k)(w)  # logged out
    p.writer = type("W", (), {"submit": lambda self, fn, done: sent.append(("delete", fn))})()
    return p, sent


def test_worker_never_pushes_to_the_sender_and_builds_the_payload(wired):
    p, sent = wired
    # alice (the sender) went offline right after sending: still no push for her
    p._expand(push.Job("msg", ["alice", "bob", "dave"], record("g:x", 4, "alice", "hello")))
    assert sorted(d.user for d in sent) == ["bob", "dave"]
    d = sent[0]
    assert orjson.loads(d.payload) == {"type": "msg", "account": d.user, "conv": "g:x", "seq": 4, "from": "alice",
                                       "ts": 1700000000000, "unread": 0, "body": "hello"}
    assert d.urgency == "high" and d.topic == push.topic(d.user, "g:x")
    assert d.endpoint == f"https://push.example.net/{d.user}"


def test_worker_skips_muted_unsubscribed_and_logged_out(wired, store):
    p, sent = wired
    apply(store, SetMute("bob", "g:x", push.now_ms() + 60_000),
          SetMute("dave", "g:x", push.now_ms() - 1))      # expired
    p._expand(push.Job("msg", ["bob", "dave", "frank", "erin"], record("g:x", 5, "alice", "hi")))
    assert [d.user for d in sent if not isinstance(d, tuple)] == ["dave"]
    assert [x[0] for x in sent if isinstance(x, tuple)] == ["delete"]       # erin's stale subscription
    assert p.counts["muted"] == 1 and p.counts["no_subscription"] == 1 and p.counts["logged_out"] == 1


def test_system_messages_only_when_configured(wired, tmp_path):
    p, sent = wired
    p._expand(push.Job("msg", ["bob"], record("g:x", 1, "alice", sys={"action": "create"})))
    assert sent == [] and p.counts["system"] == 1
    p.cfg.push_system = True
    p._expand(push.Job("msg", ["bob"], record("g:x", 1, "alice", sys={"action": "create"})))
    [d] = sent
    assert orjson.loads(d.payload)["sys"] == {"action": "create"}


def test_disabled_without_subject(tmp_path):
    p = make_push(tmp_path, FakeRouter(), subject="")
    assert not p.enabled
    p.on_message(["alice", "bob"], record("d:alice:bob", 1, "alice", "hi"))
    assert not p._ready and p.counts["disabled"] == 1
    assert not make_push(tmp_path, FakeRouter(), subject="ops@example.com").enabled


def test_bounded_queue_drops_the_oldest(tmp_path):
    p = make_push(tmp_path, FakeRouter(), push_queue=3)
    for seq in range(1, 6):
        p.on_message(["alice", "bob"], record("d:alice:bob", seq, "alice", str(seq)))
    assert [orjson.loads(b"{" + j.record)["seq"] for j in p._ready] == [3, 4, 5]
    assert p.counts["dropped"] == 2 and p.counts["queued"] == 5
    p.stop()
    assert p.counts["abandoned"] == 3 and not p._ready


def test_read_skips_the_reading_and_connected_devices(tmp_path):
    class C:
        def __init__(self, device):
            self.device = device

    p = make_push(tmp_path, FakeRouter(conns=[C("laptop"), C("tablet")]))
    p.on_read("bob", "laptop", "d:a:bob", 7)
    [job] = list(p._ready)
    assert job.kind == "read" and job.users == ["bob"] and job.skip == {"laptop", "tablet"} and job.seq == 7


def test_vapid_header_cached_per_origin(tmp_path):
    p = make_push(tmp_path, FakeRouter())
    h1 = p._vapid_headers("https://a.example/x/1")
    assert p._vapid_headers("https://a.example/y/2") is h1
    h2 = p._vapid_headers("https://b.example:8443/z")
    assert h2 is not h1 and set(p._vapid_cache) == {"https://a.example", "https://b.example:8443"}


# ----------------------------------------------------------------------------- the HTTP side
class Resolver:
    """A resolver that answers a fixed table and counts its calls (no DNS is asked)."""

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def __call__(self, host, port, family=0, type=0):
        self.calls += 1
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in self.table[host]]


@pytest.mark.parametrize("addrs", [["127.0.0.1"], ["10.0.0.7"], ["169.254.169.254"], ["::1"],
                                   ["::ffff:127.0.0.1"], ["fd00::1"], ["93.184.216.34", "127.0.0.1"]])
def test_a_name_resolving_to_any_non_public_address_is_blocked(addrs):
    h = push.PushHTTP(allow_private=False, timeout=1, resolve=Resolver({"push.test": addrs}))
    with pytest.raises(push.Blocked):
        h.post("https://push.test/x", b"", {})


@pytest.fixture
def standin(tmp_path):
    """An HTTP(S) server on 127.0.0.1 recording the Host of each POST; TLS with a certificate
    for push.test from a CA made here."""
    import datetime
    import http.server
    import ssl
    import threading
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("push.test")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("push.test")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    hosts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hosts.append(self.headers.get("Host"))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    servers = []

    def start(tls):
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return httpd.server_address[1]

    yield start, hosts, str(tmp_path / "ca.pem")
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_the_connection_goes_to_the_checked_address(standin):
    """The name is resolved once, by the check, and the connection is made to that address
    with the endpoint's name in Host: a second resolution (a DNS rebinding) has no say."""
    start, hosts, _ = standin
    port = start(tls=False)
    r = Resolver({"push.test": ["127.0.0.1"]})
    h = push.PushHTTP(allow_private=True, timeout=2, resolve=r)
    assert h.post(f"http://push.test:{port}/push/1", b"x", {})[0] == 201
    assert h.post(f"http://push.test:{port}/push/2", b"x", {})[0] == 201
    assert hosts == [f"push.test:{port}"] * 2 and r.calls == 2


def test_tls_checks_the_certificate_against_the_endpoint_name(standin):
    from urllib3.exceptions import HTTPError

    start, hosts, ca = standin
    port = start(tls=True)
    r = Resolver({"push.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    h = push.PushHTTP(allow_private=True, timeout=2, resolve=r, ca_certs=ca)
    assert h.post(f"https://push.test:{port}/push/1", b"x", {})[0] == 201
    assert hosts == [f"push.test:{port}"]
    with pytest.raises(HTTPError):                 # the certificate is for push.test only
        h.post(f"https://other.test:{port}/push/1", b"x", {})
    with pytest.raises(HTTPError):                 # and not from a CA the server trusts by default
        push.PushHTTP(allow_private=True, timeout=2, resolve=r).post(f"https://push.test:{port}/x", b"", {})
