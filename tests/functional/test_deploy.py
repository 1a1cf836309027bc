"""The shipped deployment (deploy/): the systemd units pass `systemd-analyze verify`; the
nginx and Caddy configurations run for real in front of the server on 127.0.0.1 (a
TLS-less variant generated from the shipped file, tests/harness/proxy.py): the web client,
/healthz and a WebSocket chat go through, /metrics does not, and the client's address
reaches the login throttle through X-Forwarded-For with --trusted-proxy."""
import os
import re
import shutil
import subprocess
import tomllib

import pytest
from picows import WSHandshakeError

from chatsrv import config as C
from conftest import ROOT, ServerProc, http_get, uname
from harness.net import free_port
from harness.proxy import Proxy
from harness.client import Client, PASSWORD

DEPLOY = ROOT / "deploy"
CHATSRV_BIN = ROOT / ".venv" / "bin" / "chatsrv"
SHIPPED_BIN = "/opt/chatsrv/venv/bin/chatsrv"
LOGIN_FAILURES = 2      # per address: 4 times this


def test_systemd_units_verify(tmp_path):
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing: `make test` installs Debian's systemd"
    assert CHATSRV_BIN.exists(), "make build installs the chatsrv command in .venv"
    units = ["chatsrv.service", "chatsrv-backup.service", "chatsrv-backup.timer"]
    for name in units:
        text = (DEPLOY / name).read_text()
        if name.endswith(".service"):
            # verify checks that ExecStart's program exists: point it at this checkout's
            assert text.count(SHIPPED_BIN) == 1, name
            text = text.replace(SHIPPED_BIN, str(CHATSRV_BIN))
        (tmp_path / name).write_text(text)
    r = subprocess.run([exe, "verify", *(f"./{n}" for n in units)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    # unknown keys and bad values only warn on stderr, with exit code 0
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    r = subprocess.run([exe, "security", "--offline=true", "./chatsrv.service"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for chatsrv.service: ([\d.]+)", r.stdout + r.stderr)
    assert level and float(level[1]) <= 2.0, r.stdout[-2000:]
    service = (DEPLOY / "chatsrv.service").read_text()
    for line in ("User=chatsrv", "ProtectSystem=strict", "ReadWritePaths=/var/lib/chatsrv",
                 "NoNewPrivileges=yes", "LimitNOFILE=65536"):
        assert f"\n{line}\n" in service, line


def test_shipped_settings_file_is_valid():
    cfg, sources = C.resolve(str(DEPLOY / "chatsrv.toml"))
    assert cfg.host == "127.0.0.1" and cfg.data == "/var/lib/chatsrv" and cfg.trusted_proxy == ["127.0.0.1"]
    assert set(tomllib.loads((DEPLOY / "chatsrv.toml").read_text())) <= set(C.BY_NAME)


def test_shipped_caddyfile_is_valid(tmp_path):
    exe = shutil.which("caddy")
    assert exe, "caddy is missing: `make test` installs Debian's caddy"
    env = dict(os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    r = subprocess.run([exe, "validate", "--adapter", "caddyfile", "--config", str(DEPLOY / "Caddyfile")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and "Valid configuration" in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def proxied(request, tmp_path_factory):
    """(server, proxy): the server on 127.0.0.1 trusting the proxy, the proxy in front of it."""
    base = tmp_path_factory.mktemp(request.param)
    port = free_port()
    redirect = free_port()
    while redirect == port:
        redirect = free_port()
    srv = ServerProc(base / "data", ["--trusted-proxy", "127.0.0.1", "--allowed-origin", f"http://127.0.0.1:{port}",
                                     "--login-failures", str(LOGIN_FAILURES)], log_path=base / "server.log").start()
    proxy = Proxy(request.param, base / "proxy", srv.port, port, redirect)
    try:
        proxy.start()
        yield srv, proxy
    finally:
        proxy.stop()
        assert srv.stop() == 0, srv.log_tail()


def test_http_through_the_proxy(proxied):
    srv, proxy = proxied
    status, body, headers = http_get(proxy.port, "/")
    assert status == 200 and b"<html" in body.lower() and headers["content-type"].startswith("text/html")
    assert http_get(proxy.port, "/healthz")[:2] == (200, b"ok")
    assert http_get(proxy.port, "/metrics")[0] == 404           # blocked at the proxy...
    assert http_get(srv.port, "/metrics")[0] == 200             # ...served to the box itself
    if proxy.kind == "nginx":
        status, _, headers = http_get(proxy.redirect_port, "/some/page?x=1")
        assert status == 301 and headers["location"] == "https://127.0.0.1/some/page?x=1"


async def test_websocket_chat_through_the_proxy(proxied, login, connect):
    srv, proxy = proxied
    a = await login(proxy)
    b = await login(proxy)
    sent = await a.send_msg("through the proxy", to=b.user)
    ev = await b.event("msg")
    assert (ev["from"], ev["body"], ev["seq"]) == (a.user, "through the proxy", sent["seq"])
    await b.ok("ack", upto=ev["inbox"])
    # the page's own origin through the proxy is allowed (--allowed-origin), another is refused
    c = await connect(proxy, origin=proxy.origin)
    await c.auth(a.token)
    with pytest.raises(WSHandshakeError) as ei:
        await Client.connect(proxy.url, origin="https://evil.example.com")
    assert int(ei.value.response.status) == 403


async def test_client_address_reaches_the_login_throttle(proxied, connect):
    srv, proxy = proxied

    async def failed_login(addr, **kw):
        c = await connect(proxy, local_addr=(addr, 0), **kw)
        # a fresh user name each time: only the per-address count can trip
        return await c.err("login", user=uname("nobody"), password=PASSWORD, device="d")

    for _ in range(4 * LOGIN_FAILURES):
        assert await failed_login("127.0.0.2") == "unauthorized"
    assert await failed_login("127.0.0.2") == "rate_limited"
    # a header the client sends itself is replaced by the proxy: no way around the throttle
    assert await failed_login("127.0.0.2", headers={"X-Forwarded-For": "127.0.0.9"}) == "rate_limited"
    # everyone else still comes through the same proxy address, and is not locked out
    assert await failed_login("127.0.0.3") == "unauthorized"
