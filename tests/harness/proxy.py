"""The shipped proxy configurations
(deploy/nginx.conf, deploy/Caddyfile) run for real on 127.0.0.1, in front of a server
under test. The variants are generated from the shipped files by replacing only what
ties them to a public host (TLS listeners and certificates, the public name, the
backend port); each replacement must match, so a change to the shipped file that the
generator does not understand fails the test instead of testing a stale copy."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .net import http_get

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
SHIPPED_BACKEND = "127.0.0.1:8080"
PUBLIC_NAME = "chat.example.com"


def _sub(text: str, pattern: str, repl: str, count: int, flags=re.M) -> str:
    out, n = re.subn(pattern, repl, text, flags=flags)
    assert n == count, f"expected {count} match(es) of {pattern!r} in the shipped file, found {n}"
    return out


def nginx_site(backend_port: int, port: int, redirect_port: int) -> str:
    """deploy/nginx.conf without TLS: the HTTPS server on 127.0.0.1:port, the redirect
    server on 127.0.0.1:redirect_port, the upstream on backend_port. Nothing else changes."""
    text = NGINX_CONF.read_text()
    text = _sub(text, r"^(\s*)listen 443 ssl http2;$", rf"\g<1>listen 127.0.0.1:{port};", 1)
    text = _sub(text, r"^(\s*)listen 80;$", rf"\g<1>listen 127.0.0.1:{redirect_port};", 1)
    text = _sub(text, r"^\s*listen \[::\]:(?:443 ssl http2|80);\n", "", 2)
    text = _sub(text, r"^\s*ssl_\w+ .*;\n", "", 5)
    text = _sub(text, rf"^(\s*)server {re.escape(SHIPPED_BACKEND)};$", rf"\g<1>server 127.0.0.1:{backend_port};", 1)
    return text


def caddyfile(backend_port: int, port: int) -> str:
    """deploy/Caddyfile served over plain HTTP on 127.0.0.1:port (no certificate), with
    Caddy's admin endpoint off."""
    text = CADDYFILE.read_text()
    text = _sub(text, rf"^{re.escape(PUBLIC_NAME)} {{$", f"http://127.0.0.1:{port} {{", 1)
    text = _sub(text, rf"reverse_proxy {re.escape(SHIPPED_BACKEND)}$", f"reverse_proxy 127.0.0.1:{backend_port}", 1)
    return "{\n\tadmin off\n}\n\n" + text


def _wait_http(port: int, proc: subprocess.Popen, log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited ({proc.returncode}):\n{log.read_text(errors='replace')}")
        try:
            http_get(port, "/healthz", timeout=0.5)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"proxy did not answer on {port}:\n{log.read_text(errors='replace')}")


class Proxy:
    """nginx or Caddy in the foreground, on loopback ports, files under workdir."""

    def __init__(self, kind: str, workdir: Path, backend_port: int, port: int, redirect_port: int = 0):
        self.kind, self.dir = kind, Path(workdir)
        self.backend_port, self.port, self.redirect_port = backend_port, port, redirect_port
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / f"{kind}.log"

    def start(self) -> "Proxy":
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "nginx":
            cmd = self._nginx()
        else:
            cmd = self._caddy()
        env = dict(os.environ, HOME=str(self.dir), XDG_DATA_HOME=str(self.dir / "data"),
                   XDG_CONFIG_HOME=str(self.dir / "config"))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=self.dir)
        _wait_http(self.port, self.proc, self.log)
        return self

    def _nginx(self) -> list[str]:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(exe), "nginx is missing: `make test` installs Debian's nginx"
        (self.dir / "site.conf").write_text(nginx_site(self.backend_port, self.port, self.redirect_port))
        d = self.dir
        # as root the workers would run as nobody, who cannot enter pytest's 0700 temporary directories
        user = "user root;\n" if os.geteuid() == 0 else ""
        (d / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n"
            f"  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n"
            f"  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n")
        return [exe, "-e", "stderr", "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"]

    def _caddy(self) -> list[str]:
        exe = shutil.which("caddy")
        assert exe, "caddy is missing: `make test` installs Debian's caddy"
        (self.dir / "Caddyfile").write_text(caddyfile(self.backend_port, self.port))
        return [exe, "run", "--adapter", "caddyfile", "--config", str(self.dir / "Caddyfile")]

    def stop(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The WebSocket URL through the proxy (what the test clients connect to)."""
        return f"ws://127.0.0.1:{self.port}/ws"
