"""Closed sign-up and `chatsrv adduser` against a running server."""
import subprocess
import sys

from conftest import PASSWORD


def adduser(data_dir, name, password):
    return subprocess.run([sys.executable, "-m", "chatsrv", "adduser", "--data", str(data_dir), name],
                          input=password + "\n", capture_output=True, text=True, timeout=60)


async def test_closed_signup_and_adduser_while_running(make_server, connect):
    srv = make_server("--no-signup", "--map-size", str(8 << 20))
    c = await connect(srv)
    assert await c.err("signup", user="walkin_user", password=PASSWORD) == "forbidden"
    r = adduser(srv.data_dir, "family_member", PASSWORD)
    assert r.returncode == 0, r.stderr
    ok = await c.ok("login", user="family_member", password=PASSWORD, device="phone")
    assert ok["user"] == "family_member" and ok["token"]
    assert await (await connect(srv)).err("login", user="family_member", password="wrong password",
                                          device="x") == "unauthorized"
    again = adduser(srv.data_dir, "family_member", "another password")
    assert again.returncode == 1 and "exists" in again.stderr
    short = adduser(srv.data_dir, "kid_two", "short")
    assert short.returncode == 1 and "password" in short.stderr
    bad = adduser(srv.data_dir, "Bad Name", PASSWORD)
    assert bad.returncode == 1
    # the server's own map size is unchanged by the other process: it keeps writing
    ok2 = await (await connect(srv)).ok("login", user="family_member", password=PASSWORD, device="tab")
    assert ok2["device"] == "tab"
