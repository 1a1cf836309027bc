"""auth.py without sockets: tokens, the login throttle, password hashing."""
import asyncio
import os

from chatsrv.auth import Passwords, Throttle, Tokens, load_secret


def test_tokens_have_256_bit_verifiers_and_check_by_hmac():
    t = Tokens(b"k" * 32)
    token, selector, mac = t.new()
    sel, ver = token.split(".")
    assert selector == sel.encode() and len(ver) == 43          # 32 random bytes, base64url
    assert t.selector(token) == selector
    assert t.check(token, mac)
    assert not t.check(sel + "." + "A" * 43, mac)
    assert not Tokens(b"x" * 32).check(token, mac)              # keyed: another server key fails
    assert t.selector("garbage") is None and t.selector(sel + ".short") is None
    assert token not in repr(mac)


def test_secret_is_made_once_with_mode_0600(tmp_path):
    k = load_secret(str(tmp_path))
    assert len(k) == 32 and load_secret(str(tmp_path)) == k
    assert os.stat(tmp_path / "token.key").st_mode & 0o777 == 0o600


def test_throttle_blocks_at_the_limit_within_the_window():
    th = Throttle(limit=3, window=60)
    for _ in range(2):
        th.attempt("ann")
    assert not th.blocked("ann")
    th.attempt("ann")
    assert th.blocked("ann") and not th.blocked("ben")
    short = Throttle(limit=1, window=0.01)
    short.attempt("x")
    assert short.blocked("x")
    import time
    time.sleep(0.02)
    assert not short.blocked("x")


def test_throttle_forgives_an_attempt_that_succeeded():
    th = Throttle(limit=2, window=60)
    first = th.attempt("ann")
    th.attempt("ann")
    assert th.blocked("ann")
    th.forgive("ann", first)
    assert not th.blocked("ann")
    th.forgive("ann", first)      # twice is harmless: the other attempt still counts
    th.attempt("ann")
    assert th.blocked("ann")


def test_passwords_verify_and_refuse():
    async def run():
        pw = Passwords()
        h = await pw.hash("correct horse")
        assert h.startswith("$argon2id$") and "m=19456,t=2,p=1" in h
        assert (await pw.verify(h, "correct horse"))[0]
        assert not (await pw.verify(h, "wrong horse"))[0]
        assert not (await pw.verify(None, "anything"))[0]     # unknown user: same work, refused
        pw.close()
    asyncio.run(run())
