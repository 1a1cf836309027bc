"""Accounts: signup, login, auth, logout, and what is refused before authentication."""
import asyncio
import time

import pytest

from conftest import uname
from harness.client import PASSWORD, Client


# ----------------------------------------------------------------------------- signup
async def test_signup_ok_and_conflict(server, connect):
    c = await connect(server)
    name = uname("sig")
    assert (await c.ok("signup", user=name, password=PASSWORD))["user"] == name
    assert await c.err("signup", user=name, password="another password") == "conflict"
    # a second connection sees the same conflict
    c2 = await connect(server)
    assert await c2.err("signup", user=name, password=PASSWORD) == "conflict"


async def test_signup_reply_shape(server, connect):
    c = await connect(server)
    name = uname("shape")
    ok = await c.ok("signup", user=name, password=PASSWORD)
    assert ok["user"] == name


@pytest.mark.parametrize("bad", [
    "ab",                      # too short
    "a" * 33,                  # too long
    "Alice",                   # upper case
    "al-ice",                  # dash
    "al ice",                  # space
    "al.ice",                  # dot
    "",                        # empty
    "caf\u00e9",               # non-ascii
])
async def test_signup_bad_user_name(server, connect, bad):
    c = await connect(server)
    assert await c.err("signup", user=bad, password=PASSWORD) == "bad_request"


async def test_signup_name_limits_accepted(server, connect):
    c = await connect(server)
    # exactly 3 and exactly 32 characters of [a-z0-9_] (the shared server's data
    # directory is fresh for every run, and no other test uses this 3-character name)
    assert (await c.ok("signup", user="z9_", password=PASSWORD))["user"] == "z9_"
    long = (uname("l") + "_" * 32)[:32]
    assert len(long) == 32
    assert (await c.ok("signup", user=long, password=PASSWORD))["user"] == long


async def test_signup_password_length(server, connect):
    c = await connect(server)
    assert await c.err("signup", user=uname("pw"), password="x" * 7) == "bad_request"
    assert await c.err("signup", user=uname("pw"), password="x" * 257) == "bad_request"
    assert await c.err("signup", user=uname("pw"), password="") == "bad_request"
    n8, n256 = uname("pw"), uname("pw")
    await c.ok("signup", user=n8, password="x" * 8)
    await c.ok("signup", user=n256, password="y" * 256)
    # and both can log in with them
    c2 = await connect(server)
    await c2.login(n8, "x" * 8, "d1")
    c3 = await connect(server)
    await c3.login(n256, "y" * 256, "d1")


@pytest.mark.parametrize("args", [
    {},
    {"user": "okname_1"},
    {"password": PASSWORD},
    {"user": 123, "password": PASSWORD},
    {"user": "okname_2", "password": 12345678},
    {"user": ["x"], "password": PASSWORD},
    {"user": None, "password": PASSWORD},
])
async def test_signup_wrong_types(server, connect, args):
    c = await connect(server)
    assert await c.err("signup", **args) == "bad_request"


# ----------------------------------------------------------------------------- login
async def test_login_ok_shape_and_empty_backlog(server, connect):
    c = await connect(server)
    name = uname("li")
    await c.signup(name)
    ok = await c.ok("login", user=name, password=PASSWORD, device="phone-1.a_B")
    assert ok["user"] == name and ok["device"] == "phone-1.a_B"
    assert isinstance(ok["token"], str) and len(ok["token"]) >= 32
    msgs, head = await c.backlog()
    assert msgs == [] and head == 0
    # the connection is authenticated now
    assert (await c.ok("convs"))["convs"] == []


async def test_login_gives_fresh_token_each_time(server, connect):
    name = uname("fresh")
    c1 = await connect(server)
    await c1.signup(name)
    t1 = (await c1.login(name, device="d1"))["token"]
    c2 = await connect(server)
    t2 = (await c2.login(name, device="d1"))["token"]
    assert t1 != t2
    # tokens are random with at least 256 bits: base64url of 32 bytes is 43 characters,
    # hex 64; anything shorter than 43 characters cannot carry 256 bits
    assert len(t1) >= 43 and len(t2) >= 43


async def test_login_wrong_credentials(server, connect):
    c = await connect(server)
    name = uname("wrong")
    await c.signup(name)
    assert await c.err("login", user=name, password="not the password", device="d1") == "unauthorized"
    assert await c.err("login", user=uname("nosuch"), password=PASSWORD, device="d1") == "unauthorized"
    # still unauthenticated after the failures
    assert await c.err("convs") == "unauthorized"
    # and the right password still works on the same connection
    await c.login(name, PASSWORD, "d1")
    await c.backlog()
    assert (await c.ok("convs"))["convs"] == []


@pytest.mark.parametrize("device", ["", "a" * 65, "bad device", "dev/1", "d\u00e9v", 5, None])
async def test_login_bad_device(server, connect, device):
    c = await connect(server)
    name = uname("dev")
    await c.signup(name)
    assert await c.err("login", user=name, password=PASSWORD, device=device) == "bad_request"


async def test_login_device_name_limits(server, connect):
    c = await connect(server)
    name = uname("devl")
    await c.signup(name)
    dev = "A.b-c_" + "z" * 58  # 64 characters
    assert len(dev) == 64
    ok = await c.ok("login", user=name, password=PASSWORD, device=dev)
    assert ok["device"] == dev


@pytest.mark.parametrize("args", [
    {"password": PASSWORD, "device": "d1"},
    {"user": "someone_x", "device": "d1"},
    {"user": "someone_x", "password": PASSWORD},
    {"user": 1, "password": PASSWORD, "device": "d1"},
    {"user": "someone_x", "password": None, "device": "d1"},
])
async def test_login_wrong_types(server, connect, args):
    c = await connect(server)
    assert await c.err("login", **args) == "bad_request"


async def test_login_failures_rate_limited_per_user(make_server, connect):
    srv = make_server("--login-failures", "3", "--login-window", "60")
    c = await connect(srv)
    victim, other = uname("victim"), uname("other")
    await c.signup(victim)
    await c.signup(other)
    codes = [await c.err("login", user=victim, password="wrong password", device="d1")
             for _ in range(3)]
    assert codes == ["unauthorized"] * 3
    assert await c.err("login", user=victim, password="wrong password", device="d1") == "rate_limited"
    # locked out: even the right password is refused (else the lock-out would leak it)
    c2 = await connect(srv)
    assert await c2.err("login", user=victim, password=PASSWORD, device="d1") == "rate_limited"
    # another user from the same address is not locked out by 3 failures
    await c2.login(other, PASSWORD, "d1")
    await c2.backlog()


async def test_login_failures_rate_limited_per_address(make_server, connect):
    # 3 failures per user, 4*3 = 12 per address
    srv = make_server("--login-failures", "3", "--login-window", "60")
    c = await connect(srv)
    users = [uname("addr") for _ in range(7)]
    for u in users:
        await c.signup(u)
    codes = []
    for u in users[:6]:           # 2 failures per user: never the per-user limit
        for _ in range(2):
            codes.append(await c.err("login", user=u, password="wrong password", device="d1"))
    assert codes == ["unauthorized"] * 12
    # the address has used up its failures: a fresh user from it is refused too
    c2 = await connect(srv)
    assert await c2.err("login", user=users[6], password=PASSWORD, device="d1") == "rate_limited"



async def _simultaneous_logins(srv, connect, attempts):
    """One connection per (user, password), every login sent before any reply is read:
    the error code (or "ok") of each, in order."""
    clients = [await connect(srv) for _ in attempts]
    futs = [c.start("login", user=u, password=p, device="d1") for c, (u, p) in zip(clients, attempts)]
    replies = await asyncio.gather(*(asyncio.wait_for(f, 30) for f in futs))
    return ["ok" if "ok" in r else r["err"]["code"] for r in replies]


async def test_simultaneous_wrong_logins_are_limited_per_user(make_server, connect):
    """40 guesses at the same moment: only --login-failures of them get their hash checked."""
    srv = make_server("--login-failures", "3", "--login-window", "60")
    c = await connect(srv)
    victim = uname("simul")
    await c.signup(victim)
    codes = await _simultaneous_logins(srv, connect, [(victim, f"guess number {i}") for i in range(40)])
    assert codes.count("unauthorized") == 3, codes
    assert codes.count("rate_limited") == 37, codes
    assert await c.err("login", user=victim, password=PASSWORD, device="d1") == "rate_limited"


async def test_simultaneous_wrong_logins_are_limited_per_address(make_server, connect):
    # 40 names, one guess each, all from 127.0.0.1 at once: 4 x 3 = 12 are checked
    srv = make_server("--login-failures", "3", "--login-window", "60")
    codes = await _simultaneous_logins(srv, connect, [(uname("simad"), "wrong password") for _ in range(40)])
    assert codes.count("unauthorized") == 12, codes
    assert codes.count("rate_limited") == 28, codes


async def test_simultaneous_logins_respect_the_pending_hash_cap(make_server, connect):
    """--max-pending-hashes 4: logins beyond 4 queued hashes are refused at once, also when they
    all arrive before the first hash is done (an argon2 verify takes about 30 ms here)."""
    srv = make_server("--login-failures", "1000", "--max-pending-hashes", "4")
    codes = await _simultaneous_logins(srv, connect, [(uname("simpe"), "wrong password") for _ in range(40)])
    assert codes.count("unauthorized") + codes.count("rate_limited") == 40, codes
    # a few hashes finish while the 40 frames arrive; without the cap all 40 are checked
    assert 4 <= codes.count("unauthorized") <= 20, codes


async def test_successful_logins_do_not_count_as_failures(make_server, connect):
    srv = make_server("--login-failures", "2", "--login-window", "60")
    name = uname("okcount")
    c = await connect(srv)
    await c.signup(name)
    for i in range(4):          # more successes than the limit, one after the other
        c2 = await connect(srv)
        await c2.login(name, PASSWORD, f"d{i}")
    assert await c.err("login", user=name, password="wrong password", device="d1") == "unauthorized"


# ----------------------------------------------------------------------------- auth
async def test_auth_with_token(server, connect):
    name = uname("auth")
    c1 = await connect(server)
    await c1.signup(name)
    token = (await c1.login(name, device="tab"))["token"]
    await c1.backlog()
    c2 = await connect(server)
    ok = await c2.ok("auth", token=token)
    assert ok["user"] == name and ok["device"] == "tab"
    msgs, head = await c2.backlog()
    assert msgs == [] and head == 0
    assert (await c2.ok("convs"))["convs"] == []


async def test_auth_bad_token(server, connect):
    c = await connect(server)
    assert await c.err("auth", token="A" * 43) == "unauthorized"
    assert await c.err("auth", token="") in ("unauthorized", "bad_request")
    assert await c.err("auth", token=123) == "bad_request"
    assert await c.err("auth") == "bad_request"
    assert await c.err("convs") == "unauthorized"


async def test_auth_token_is_not_the_user_name_or_password(server, connect):
    name = uname("tk")
    c = await connect(server)
    await c.signup(name)
    token = (await c.login(name))["token"]
    assert name not in token and PASSWORD not in token
    c2 = await connect(server)
    assert await c2.err("auth", token=token[:-1] + ("A" if token[-1] != "A" else "B")) == "unauthorized"


# ----------------------------------------------------------------------------- unauthenticated
@pytest.mark.parametrize("op,args", [
    ("send", {"to": "someone", "body": "hi", "cid": "x1"}),
    ("send", {"conv": "d:a_x:b_x", "body": "hi", "cid": "x1"}),
    ("ack", {"upto": 0}),
    ("history", {"conv": "d:a_x:b_x"}),
    ("convs", {}),
    ("logout", {}),
])
async def test_ops_before_auth_unauthorized(server, connect, op, args):
    c = await connect(server)
    assert await c.err(op, **args) == "unauthorized"
    # the connection stays open and usable
    name = uname("pre")
    await c.signup(name)


async def test_no_events_before_auth(server, connect, login):
    a = await login(server)
    b_name = uname("bpre")
    watcher = await connect(server)
    await watcher.signup(b_name)
    await a.send_msg("hello", to=b_name)
    await watcher.no_event("msg", within=0.3)


# ----------------------------------------------------------------------------- logout
async def test_logout_closes_device_connections_and_revokes_token(server, connect, login):
    name = uname("lo")
    c1 = await login(server, name, device="phone")
    c2 = await connect(server)
    await c2.auth(c1.token)                    # same device, second connection
    await c2.backlog()
    c3 = await login(server, name, device="laptop", signup=False)   # other device

    t0 = time.monotonic()
    assert isinstance(await c1.ok("logout"), dict)
    code1 = await c1.closed(1.5)
    code2 = await c2.closed(1.5)
    assert code1 == 1008 and code2 == 1008, (code1, code2)
    assert c1.close_reason == c2.close_reason == "logged out", (c1.close_reason, c2.close_reason)
    assert c1.disconnected_at - t0 <= 1.2 and c2.disconnected_at - t0 <= 1.2

    # the other device is untouched
    assert (await c3.ok("convs"))["convs"] == []
    assert not c3.disconnected

    # the token no longer works
    c4 = await connect(server)
    assert await c4.err("auth", token=c1.token) == "unauthorized"
    # but the user can log in again
    await c4.login(name, PASSWORD, "phone")
    await c4.backlog()


async def test_logout_revokes_every_token_of_the_device(server, connect, login):
    name = uname("lo2")
    c1 = await login(server, name, device="d1")
    c2 = await login(server, name, device="d1", signup=False)
    assert c1.token != c2.token
    await c2.ok("logout")
    assert await c2.closed(1.5) == 1008
    assert await c1.closed(1.5) == 1008   # authenticated as the same (user, device)
    c3 = await connect(server)
    assert await c3.err("auth", token=c1.token) == "unauthorized"
    assert await c3.err("auth", token=c2.token) == "unauthorized"


async def test_login_throttle_per_client_address_behind_a_trusted_proxy(make_server, connect):
    """Behind a reverse proxy every connection comes from the proxy's address: the per-address
    throttle must count the client named in X-Forwarded-For, and only from a trusted proxy."""
    srv = make_server("--login-failures", "1", "--login-window", "60", "--trusted-proxy", "127.0.0.1")
    c = await connect(srv)
    victims = [uname("xff") for _ in range(5)]
    for u in victims:
        await c.signup(u)
    attacker = await connect(srv, headers={"X-Forwarded-For": "203.0.113.7"})
    # 4 failures (4 x --login-failures) on four names: the attacker's address is used up
    for u in victims[:4]:
        assert await attacker.err("login", user=u, password="wrong password", device="d") == "unauthorized"
    again = await connect(srv, headers={"X-Forwarded-For": "203.0.113.7"})
    assert await again.err("login", user=victims[4], password=PASSWORD, device="d") == "rate_limited"
    # another client of the same proxy is not locked out
    other = await connect(srv, headers={"X-Forwarded-For": "198.51.100.2, 203.0.113.99"})
    assert "token" in await other.ok("login", user=victims[4], password=PASSWORD, device="d")


async def test_x_forwarded_for_header_added_by_the_proxy_on_its_own_line_counts(make_server, connect):
    """HAProxy adds its X-Forwarded-For as a new header line after the client's own: the
    address the proxy saw is the last one of all lines, not of the first."""
    srv = make_server("--login-failures", "1", "--login-window", "60", "--trusted-proxy", "127.0.0.1")
    c = await connect(srv)
    victims = [uname("xfl") for _ in range(5)]
    for u in victims:
        await c.signup(u)
    for i, u in enumerate(victims[:4]):
        # the attacker forges a fresh first line each time; the proxy's line says who it is
        cl = await connect(srv, headers=[("X-Forwarded-For", f"192.0.2.{i}"),
                                         ("X-Forwarded-For", "203.0.113.7")])
        assert await cl.err("login", user=u, password="wrong password", device="d") == "unauthorized"
    cl = await connect(srv, headers=[("X-Forwarded-For", "192.0.2.99"), ("X-Forwarded-For", "203.0.113.7")])
    assert await cl.err("login", user=victims[4], password=PASSWORD, device="d") == "rate_limited"


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(make_server, connect):
    srv = make_server("--login-failures", "1", "--login-window", "60")
    c = await connect(srv)
    victims = [uname("xfu") for _ in range(5)]
    for u in victims:
        await c.signup(u)
    for i, u in enumerate(victims[:4]):
        # a spoofed header per attempt changes nothing: the peer address is what counts
        cl = await connect(srv, headers={"X-Forwarded-For": f"192.0.2.{i}"})
        assert await cl.err("login", user=u, password="wrong password", device="d") == "unauthorized"
    cl = await connect(srv, headers={"X-Forwarded-For": "192.0.2.200"})
    assert await cl.err("login", user=victims[4], password=PASSWORD, device="d") == "rate_limited"
