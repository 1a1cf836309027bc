"""Push notifications (Web Push with VAPID), against a real server and a push service
stand-in on 127.0.0.1 that verifies the VAPID JWT and decrypts each push with the
subscriber's private key and auth secret (real crypto, real sockets)."""
import asyncio
import base64
import http.server
import os
import re
import socket
import statistics
import time

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import ServerProc, _finish, http_get, uname
from harness.net import free_port
from harness.client import dconv, now_ms
from harness.push import b64url, b64url_dec, pushsvc  # noqa: F401 - pushsvc is a fixture

SUBJECT = "mailto:ops@chatsrv.test"
PUSH_ARGS = ["--rate", "100000", "--burst", "100000", "--login-failures", "1000",
             "--vapid-subject", SUBJECT, "--push-allow-http", "--push-timeout", "2",
             "--push-retry-delay", "0.2"]
QUIET = 0.8          # seconds to wait when asserting that no push arrives


@pytest.fixture(scope="module")
def psrv(tmp_path_factory):
    """A server with pushes on (VAPID subject set, http endpoints on 127.0.0.1 allowed)."""
    base = tmp_path_factory.mktemp("push")
    s = ServerProc(base / "data", PUSH_ARGS, log_path=base / "server.log").start()
    yield s
    _finish(s)


def metric(srv, name, labels=""):
    status, body, _ = http_get(srv.port, "/metrics")
    assert status == 200
    m = re.search(rf"^{re.escape(name + labels)} ([0-9.e+]+)$", body.decode(), re.M)
    return float(m.group(1)) if m else None


def outcome(srv, name):
    return metric(srv, "chatsrv_push_total", f'{{outcome="{name}"}}') or 0.0


async def wait_metric(srv, name, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = metric(srv, name)
        if v is not None and pred(v):
            return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} did not reach the expected value: {metric(srv, name)}")


async def subscribe(c, sub):
    assert await c.ok("push_subscribe", **sub) == {}


async def offline_subscribed(srv, login, svc, name=None, device="phone", mode="ok"):
    """A user with one subscribed device that then goes offline; returns (name, sid)."""
    name = name or uname("p")
    c = await login(srv, name, device=device)
    sid, sub = svc.subscription(mode)
    await subscribe(c, sub)
    before = metric(srv, "chatsrv_connections_authenticated")
    await c.close()
    await wait_metric(srv, "chatsrv_connections_authenticated", lambda v: v <= before - 1)
    return name, sid


# ----------------------------------------------------------------------------- ops
async def test_push_key_is_an_uncompressed_p256_point(psrv, connect):
    c = await connect(psrv)
    key = (await c.ok("push_key"))["key"]    # allowed before authentication
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key), key
    raw = b64url_dec(key)
    assert len(raw) == 65 and raw[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


async def test_push_ops_need_authentication(psrv, connect, pushsvc):
    c = await connect(psrv)
    _, sub = pushsvc.subscription()
    assert await c.err("push_subscribe", **sub) == "unauthorized"
    assert await c.err("push_unsubscribe") == "unauthorized"
    assert await c.err("mute", conv="d:a:b", until=0) == "unauthorized"


async def test_push_subscribe_validates_every_field(psrv, login, pushsvc):
    c = await login(psrv)
    _, sub = pushsvc.subscription()
    ep, keys = sub["endpoint"], sub["keys"]
    bad = [
        {"keys": keys},
        {"endpoint": ep},
        {"endpoint": 5, "keys": keys},
        {"endpoint": "", "keys": keys},
        {"endpoint": "ftp://127.0.0.1/x", "keys": keys},
        {"endpoint": "push/relative", "keys": keys},
        {"endpoint": "https://user:pw@push.example.net/x", "keys": keys},
        {"endpoint": "https:///nohost", "keys": keys},
        {"endpoint": "https://push.example.net/x y", "keys": keys},
        {"endpoint": "https://push.example.net/x#frag", "keys": keys},
        {"endpoint": "https://push.example.net:99999/x", "keys": keys},
        {"endpoint": "https://push.example.net/" + "a" * 2100, "keys": keys},
        {"endpoint": ep, "keys": "nope"},
        {"endpoint": ep, "keys": {"p256dh": keys["p256dh"]}},
        {"endpoint": ep, "keys": {"auth": keys["auth"]}},
        {"endpoint": ep, "keys": {"p256dh": keys["p256dh"], "auth": b64url(os.urandom(15))}},
        {"endpoint": ep, "keys": {"p256dh": keys["p256dh"], "auth": "not base64!"}},
        {"endpoint": ep, "keys": {"p256dh": b64url(os.urandom(64)), "auth": keys["auth"]}},
        # 65 bytes with the 0x04 prefix, but not a point on the curve
        {"endpoint": ep, "keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": keys["auth"]}},
        {"endpoint": ep, "keys": {"p256dh": 7, "auth": keys["auth"]}},
    ]
    for args in bad:
        assert await c.err("push_subscribe", **args) == "bad_request", args
    assert await c.ok("push_subscribe", **sub) == {}
    # a new subscription replaces the old one; unsubscribe twice is fine
    _, sub2 = pushsvc.subscription()
    assert await c.ok("push_subscribe", **sub2) == {}
    assert await c.ok("push_unsubscribe") == {}
    assert await c.ok("push_unsubscribe") == {}


def keys_only():
    return {"p256dh": b64url(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)), "auth": b64url(os.urandom(16))}


async def test_https_only_without_allow_http(server, login):
    """The shared server runs without --push-allow-http (and without a VAPID subject, so
    nothing is ever sent from it)."""
    c = await login(server)
    keys = {"p256dh": b64url(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)), "auth": b64url(os.urandom(16))}
    for ep in ("http://push.example.net/x", "https://127.0.0.1/x", "https://localhost:8443/x",
               "https://10.1.2.3/x", "https://[::1]/x", "https://169.254.169.254/latest"):
        assert await c.err("push_subscribe", endpoint=ep, keys=keys) == "bad_request", ep
    assert await c.ok("push_subscribe", endpoint="https://push.example.net/wpush/v2/abc", keys=keys) == {}


async def test_endpoint_whose_name_resolves_to_this_machine_gets_no_connection(make_server, login, connect):
    """Without --push-allow-http the address check resolves the name when it sends: names that
    pass the check of literals but that this machine resolves to 127.0.0.1 never get a
    connection (the server would otherwise post to its own loopback services)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", free_port()))
    listener.listen(16)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    names = ["127.1", "2130706433", "0x7f000001"]          # all 127.0.0.1 to the resolver
    try:
        if socket.gethostbyname(socket.gethostname()).startswith("127."):
            names.append(socket.gethostname())
    except OSError:
        pass
    srv = make_server(*[a for a in PUSH_ARGS if a != "--push-allow-http"])
    alice = await login(srv)
    for name in names:
        bob = await login(srv, device="phone")
        sub = {"endpoint": f"https://{name}:{port}/push/x", "keys": keys_only()}
        await subscribe(bob, sub)                       # nothing tells the name apart from a public one
        await bob.close()
        await wait_metric(srv, "chatsrv_connections_authenticated", lambda v: v <= 1)
        await alice.send_msg("to a loopback endpoint", to=bob.user)
    deadline = time.monotonic() + 6
    while outcome(srv, "blocked") < len(names) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    accepted = 0
    while True:
        try:
            listener.accept()[0].close()
            accepted += 1
        except BlockingIOError:
            break
    listener.close()
    assert accepted == 0, f"the server connected to 127.0.0.1:{port} {accepted} time(s) for {names}"
    assert outcome(srv, "blocked") == len(names)
    assert outcome(srv, "sent") == 0 and outcome(srv, "retried") == 0


async def test_redirect_from_a_push_service_is_not_followed(psrv, login, pushsvc):
    target, _ = pushsvc.subscription()
    bob, sid = await offline_subscribed(psrv, login, pushsvc, mode=f"redirect:{target}")
    rejected = outcome(psrv, "rejected")
    alice = await login(psrv)
    await alice.send_msg("redirected?", to=bob)
    await pushsvc.wait(sid, 1)
    deadline = time.monotonic() + 3
    while outcome(psrv, "rejected") < rejected + 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert outcome(psrv, "rejected") == rejected + 1     # a 3xx is an answer, not a place to go
    await asyncio.sleep(QUIET)
    assert pushsvc.pushes(target) == [], "the redirect was followed"


async def test_mute_validation(psrv, login):
    a = await login(psrv)
    b = await login(psrv)
    await a.send_msg("hi", to=b.user)
    conv = dconv(a.user, b.user)
    for args in ({"conv": conv}, {"until": 0}, {"conv": conv, "until": -1}, {"conv": conv, "until": "1"},
                 {"conv": conv, "until": 1.5}, {"conv": 3, "until": 0}):
        assert await a.err("mute", **args) == "bad_request", args
    assert await a.err("mute", conv="d:nobody:zzz", until=0) == "forbidden"
    assert await a.ok("mute", conv=conv, until=now_ms() + 60_000) == {}
    assert await a.ok("mute", conv=conv, until=0) == {}


# ----------------------------------------------------------------------------- policy
async def test_offline_recipient_gets_exactly_one_decryptable_push(psrv, login, connect, pushsvc):
    key = (await (await connect(psrv)).ok("push_key"))["key"]
    bob, sid = await offline_subscribed(psrv, login, pushsvc)
    a = await login(psrv)
    ok = await a.send_msg("hello bob \u00e9\U0001F600", to=bob)
    [push] = await pushsvc.wait(sid, 1)
    p = push["payload"]
    assert p == {"type": "msg", "account": bob, "conv": dconv(a.user, bob), "seq": ok["seq"], "from": a.user,
                 "body": "hello bob \u00e9\U0001F600", "ts": ok["ts"], "unread": 1}, p
    # VAPID: signed with the server's key, for this push service's origin
    assert push["k"] == key
    c = push["claims"]
    assert c["aud"] == f"http://127.0.0.1:{pushsvc.port}" and c["sub"] == SUBJECT
    assert time.time() < c["exp"] <= time.time() + 24 * 3600
    h = push["headers"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", h["topic"]), h
    assert h["ttl"] == "86400" and h["urgency"] == "high", h
    await asyncio.sleep(QUIET)
    assert len(pushsvc.pushes(sid)) == 1, "more than one push"
    # a second message: a second push, same topic (collapses per conversation), unread 2
    ok2 = await a.send_msg("again", to=bob)
    got = await pushsvc.wait(sid, 2)
    assert got[1]["payload"]["seq"] == ok2["seq"] and got[1]["payload"]["unread"] == 2
    assert got[1]["headers"]["topic"] == h["topic"]
    assert outcome(psrv, "sent") >= 2


async def test_online_recipient_gets_no_push(psrv, login, pushsvc):
    bob, sid = await offline_subscribed(psrv, login, pushsvc)
    b = await login(psrv, bob, device="laptop", signup=False)    # another device is connected
    a = await login(psrv)
    await a.send_msg("you are online", to=bob)
    await b.event("msg")
    await asyncio.sleep(QUIET)
    assert pushsvc.pushes(sid) == []


async def test_sender_gets_no_push(psrv, login, pushsvc):
    alice, sid_a = await offline_subscribed(psrv, login, pushsvc)
    bob, sid_b = await offline_subscribed(psrv, login, pushsvc)
    a = await login(psrv, alice, device="laptop", signup=False)
    await a.send_msg("from alice's laptop", to=bob)
    await pushsvc.wait(sid_b, 1)
    await asyncio.sleep(QUIET)
    assert pushsvc.pushes(sid_a) == []


async def test_muted_conversation_gets_no_push(psrv, login, pushsvc):
    bob, sid = await offline_subscribed(psrv, login, pushsvc)
    a = await login(psrv)
    conv = dconv(a.user, bob)
    await a.send_msg("first", to=bob)
    await pushsvc.wait(sid, 1)
    b = await login(psrv, bob, device="laptop", signup=False)
    assert await b.ok("mute", conv=conv, until=now_ms() + 3_600_000) == {}
    await b.close()
    await asyncio.sleep(0.2)
    muted_before = outcome(psrv, "muted")
    await a.send_msg("muted one", to=bob)
    await asyncio.sleep(QUIET)
    assert len(pushsvc.pushes(sid)) == 1, "pushed a muted conversation"
    assert outcome(psrv, "muted") > muted_before
    # unmute: pushes again
    b = await login(psrv, bob, device="laptop", signup=False)
    assert await b.ok("mute", conv=conv, until=0) == {}
    await b.close()
    await asyncio.sleep(0.2)
    await a.send_msg("unmuted", to=bob)
    got = await pushsvc.wait(sid, 2)
    assert got[1]["payload"]["body"] == "unmuted"


async def test_410_deletes_the_subscription(psrv, login, pushsvc):
    bob, sid = await offline_subscribed(psrv, login, pushsvc, mode="gone")
    a = await login(psrv)
    gone_before = outcome(psrv, "gone")
    await a.send_msg("to a gone endpoint", to=bob)
    await pushsvc.wait(sid, 1)
    deadline = time.monotonic() + 5
    while outcome(psrv, "gone") <= gone_before and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert outcome(psrv, "gone") > gone_before
    await asyncio.sleep(0.3)    # the deletion's commit
    nosub_before = outcome(psrv, "no_subscription")
    await a.send_msg("again", to=bob)
    await asyncio.sleep(QUIET)
    assert len(pushsvc.pushes(sid)) == 1, "pushed again to a deleted subscription"
    assert outcome(psrv, "no_subscription") > nosub_before


async def test_logged_out_device_gets_no_push(psrv, login, pushsvc):
    bob = uname("p")
    c = await login(psrv, bob, device="phone")
    sid, sub = pushsvc.subscription()
    await subscribe(c, sub)
    assert await c.ok("logout") == {}
    await c.closed(2.0)
    await asyncio.sleep(0.2)
    a = await login(psrv)
    await a.send_msg("after logout", to=bob)
    await asyncio.sleep(QUIET)
    assert pushsvc.pushes(sid) == []


async def test_unsubscribed_device_gets_no_push(psrv, login, pushsvc):
    bob = uname("p")
    c = await login(psrv, bob, device="phone")
    sid, sub = pushsvc.subscription()
    await subscribe(c, sub)
    assert await c.ok("push_unsubscribe") == {}
    await c.close()
    await asyncio.sleep(0.2)
    a = await login(psrv)
    await a.send_msg("after unsubscribe", to=bob)
    await asyncio.sleep(QUIET)
    assert pushsvc.pushes(sid) == []


async def test_long_body_is_cut_to_fit(psrv, login, pushsvc):
    bob, sid = await offline_subscribed(psrv, login, pushsvc)
    a = await login(psrv)
    body = "\u00e9\"x" * 4000      # 16000 UTF-8 bytes, a third of them JSON-escaped
    await a.send_msg(body, to=bob)   # under the 16384-byte default limit
    [push] = await pushsvc.wait(sid, 1)
    assert push["plain_len"] <= 3900
    p = push["payload"]
    assert p["cut"] is True and p["body"].endswith("\u2026") and body.startswith(p["body"][:-1])
    assert len(p["body"]) > 1000


async def test_failures_are_retried_with_backoff(psrv, login, pushsvc):
    bob, sid = await offline_subscribed(psrv, login, pushsvc, mode="fail2")
    a = await login(psrv)
    retried = outcome(psrv, "retried")
    await a.send_msg("third time lucky", to=bob)
    got = await pushsvc.wait(sid, 3, timeout=10)      # 503, 503 (after ~0.2 s, ~0.4 s), then 201
    assert [g["payload"]["body"] for g in got] == ["third time lucky"] * 3
    await asyncio.sleep(QUIET)
    assert len(pushsvc.pushes(sid)) == 3
    assert outcome(psrv, "retried") >= retried + 2


async def test_retries_are_bounded(psrv, login, pushsvc):
    bob, sid = await offline_subscribed(psrv, login, pushsvc, mode="fail99")
    a = await login(psrv)
    failed = outcome(psrv, "failed")
    await a.send_msg("never accepted", to=bob)
    await pushsvc.wait(sid, 4, timeout=15)            # the first try and --push-retries 3 retries
    deadline = time.monotonic() + 5
    while outcome(psrv, "failed") <= failed and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert outcome(psrv, "failed") == failed + 1
    await asyncio.sleep(QUIET)
    assert len(pushsvc.pushes(sid)) == 4


async def test_grace_skips_a_recipient_who_reconnects(make_server, login, pushsvc):
    srv = make_server(*PUSH_ARGS, "--push-grace", "1.0")
    bob, sid = await offline_subscribed(srv, login, pushsvc)
    a = await login(srv)
    await a.send_msg("while away", to=bob)
    b = await login(srv, bob, device="phone", signup=False)     # back within the grace
    assert [m["body"] for m in b.backlog_msgs] == ["while away"]
    await asyncio.sleep(1.0 + QUIET)
    assert pushsvc.pushes(sid) == []
    assert outcome(srv, "online") == 1
    await b.close()
    await wait_metric(srv, "chatsrv_users_online", lambda v: v <= 1)
    t0 = time.monotonic()
    await a.send_msg("still away", to=bob)
    [push] = await pushsvc.wait(sid, 1)
    assert time.monotonic() - t0 >= 0.9, "pushed before the grace ran out"
    assert push["payload"]["body"] == "still away"


async def test_read_push_reaches_the_other_device(psrv, login, pushsvc):
    bob, sid_phone = await offline_subscribed(psrv, login, pushsvc)
    laptop = await login(psrv, bob, device="laptop", signup=False)
    sid_laptop, sub = pushsvc.subscription()
    await subscribe(laptop, sub)
    a = await login(psrv)
    ok = await a.send_msg("read me", to=bob)
    await laptop.event("msg")
    conv = dconv(a.user, bob)
    r = await laptop.req("read", conv=conv, seq=ok["seq"])
    assert r.get("ok") == {}, r
    got = await pushsvc.wait(sid_phone, 1)
    assert [g["payload"] for g in got] == [{"type": "read", "account": bob, "conv": conv, "seq": ok["seq"],
                                            "unread": 0}]
    await asyncio.sleep(QUIET)
    assert pushsvc.pushes(sid_laptop) == []
    assert len(pushsvc.pushes(sid_phone)) == 1


async def test_hanging_push_service_does_not_slow_delivery(make_server, login, pushsvc):
    """While every push worker is stuck on a push service that never answers, messages to
    online users are delivered as fast as before."""
    srv = make_server(*PUSH_ARGS, "--push-workers", "2", "--push-queue", "8", "--push-timeout", "3")
    carol, sid = await offline_subscribed(srv, login, pushsvc, mode="hang")
    a = await login(srv)
    b = await login(srv)

    async def latency():
        t0 = time.perf_counter()
        await a.send_msg("ping", to=b.user)
        await b.event("msg")
        return time.perf_counter() - t0

    for _ in range(5):      # warm-up
        await latency()
    base = [await latency() for _ in range(30)]
    # fill the workers and the queue with pushes to the hanging endpoint
    for i in range(40):
        await a.send_msg(f"to carol {i}", to=carol)
    deadline = time.monotonic() + 5
    while pushsvc.hanging < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert pushsvc.hanging >= 2, "the push workers are not held by the hanging service"
    loaded = []
    for i in range(30):
        loaded.append(await latency())
        if i % 5 == 0:
            await a.send_msg(f"to carol again {i}", to=carol)   # keep the queue full
    assert pushsvc.hanging >= 1
    b50, l50 = statistics.median(base), statistics.median(loaded)
    print(f"delivery latency: baseline median {b50 * 1000:.2f} ms max {max(base) * 1000:.2f} ms; "
          f"push service hanging: median {l50 * 1000:.2f} ms max {max(loaded) * 1000:.2f} ms")
    assert max(loaded) < 0.2, f"delivery latency while the push service hangs: max {max(loaded):.3f}s"
    assert l50 < b50 + 0.05, f"median latency {l50 * 1000:.1f} ms vs {b50 * 1000:.1f} ms baseline"
    assert outcome(srv, "dropped") > 0, "the bounded queue did not drop the oldest"
    pushsvc.release.set()


def test_vapid_key_file_and_subject_warning(make_server, tmp_path):
    srv = make_server()   # no --vapid-subject
    path = srv.data_dir / "vapid_private.pem"
    assert path.exists()
    assert (path.stat().st_mode & 0o777) == 0o600
    assert "--vapid-subject" in srv.log_path.read_text()
    pem = path.read_bytes()
    srv.stop()
    srv.restart()
    assert path.read_bytes() == pem, "the VAPID key changed across a restart"
    assert metric(srv, "chatsrv_push_enabled") == 0
