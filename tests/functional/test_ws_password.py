"""Changing a password (`password_change`, protocol §6.9) over real sockets: the current
password is checked, the new one works and the old one stops working, and other devices
are signed out only when asked."""
import asyncio

from harness.client import PASSWORD

NEW = "a new password 2"


async def test_wrong_current_password_is_refused_and_changes_nothing(server, login, connect):
    a = await login(server)
    assert await a.err("password_change", old="not the password", new=NEW) == "forbidden"
    assert await a.err("password_change", old=PASSWORD, new="short") == "bad_request"
    assert (await a.ok("convs"))["convs"] == []          # the connection keeps working
    c = await connect(server)
    await c.login(a.user, PASSWORD, "dev2")              # the old password still works


async def test_new_password_replaces_the_old_one_and_other_devices_stay(server, login, connect):
    a = await login(server, device="laptop")
    phone = await login(server, a.user, device="phone", signup=False)
    assert await a.ok("password_change", old=PASSWORD, new=NEW) == {}
    c = await connect(server)
    assert await c.err("login", user=a.user, password=PASSWORD, device="tablet") == "unauthorized"
    await c.login(a.user, NEW, "tablet")
    # without logout_others the phone is still signed in, and its token still works
    assert (await phone.ok("convs"))["convs"] == []
    d = await connect(server)
    await d.auth(phone.token)


async def test_logout_others_signs_out_every_other_device_only(server, login, connect):
    a = await login(server, device="laptop")
    laptop2 = await connect(server)
    await laptop2.auth(a.token)                          # a second tab of the same device
    phone = await login(server, a.user, device="phone", signup=False)
    tablet = await login(server, a.user, device="tablet", signup=False)
    assert await a.ok("password_change", old=PASSWORD, new=NEW, logout_others=True) == {}
    for c in (phone, tablet):
        assert await c.closed(3.0) == 1008 and c.close_reason == "logged out", (c.close_code, c.close_reason)
    await asyncio.sleep(0.2)
    assert laptop2.close_code is None and (await laptop2.ok("convs"))["convs"] == []
    assert (await a.ok("convs"))["convs"] == []
    e = await connect(server)
    assert await e.err("auth", token=phone.token) == "unauthorized"
    f = await connect(server)
    await f.auth(a.token)                                # this device's token is kept


async def test_simultaneous_wrong_current_passwords_are_limited(make_server, login):
    """Guesses of the current password sent at once count as they arrive, as logins do:
    --login-failures of them are checked, the rest refused unchecked."""
    srv = make_server("--login-failures", "3", "--login-window", "60")
    a = await login(srv)
    futs = [a.start("password_change", old=f"guess number {i}", new=NEW) for i in range(12)]
    codes = [r["err"]["code"] for r in await asyncio.gather(*futs)]
    assert codes.count("forbidden") == 3 and codes.count("rate_limited") == 9, codes
