"""HAProxy (Debian's `haproxy`) in front of several servers under test, as a subprocess on
127.0.0.1: round robin, WebSocket pass-through (an upgraded connection is a tunnel with
its own idle timeout), a health check on each backend's /healthz, and each response
marked with the backend that served it (`X-Chatsrv-Backend`), so that a test knows which
node a connection landed on. Its config is checked with `haproxy -c` before it runs;
its admin socket reports each backend's state. It never starts the backends itself."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

from .net import HOST, free_port
from .proc import Managed

READY_TIMEOUT = 10.0
BACKEND_HEADER = "x-chatsrv-backend"


class ConfigError(RuntimeError):
    """haproxy refused the config (`-c`); the message is its own."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (Path("/usr/sbin/haproxy").exists() and "/usr/sbin/haproxy")
    if not found:
        raise RuntimeError("haproxy not found: make sysdeps (Debian package haproxy)")
    return found


class Balancer(Managed):
    """HAProxy over `backends`, a sequence of (name, port) on 127.0.0.1. `check_ms` is the
    health-check interval (a backend is DOWN after one failed check and UP after one
    good one, so a test sees a killed node leave the rotation within about that long);
    `tunnel_s` is how long an idle upgraded connection stays open; `client_s` the idle
    timeout of a plain HTTP request, which must not apply to an upgraded one."""

    name = "haproxy"

    def __init__(self, root, backends: Sequence[tuple[str, int]], *, check_ms: int = 200,
                 tunnel_s: float = 3600, client_s: float = 30):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.backends = list(backends)
        self.check_ms = check_ms
        self.tunnel_s = tunnel_s
        self.client_s = client_s
        self.port: Optional[int] = None
        self.monitor_port: Optional[int] = None
        self.conf_path = self.root / "haproxy.cfg"
        self.log_path = self.root / "haproxy.log"
        self.admin_path = self.root / "admin.sock"

    # ------------------------------------------------------------------ config
    def config_text(self) -> str:
        ms = lambda s: f"{int(s * 1000)}ms"   # noqa: E731
        lines = [
            "global",
            f"    stats socket {self.admin_path} mode 600 level admin",
            "defaults",
            "    mode http",
            "    option forwardfor",
            # a connection sent to a node that died but is not yet marked DOWN goes to another
            "    option redispatch",
            "    retries 2",
            "    timeout connect 1s",
            f"    timeout client {ms(self.client_s)}",
            f"    timeout server {ms(self.client_s)}",
            f"    timeout tunnel {ms(self.tunnel_s)}",
            f"    default-server check inter {self.check_ms}ms fall 1 rise 1",
            "frontend ws_in",
            f"    bind {HOST}:{self.port}",
            "    default_backend chat",
            "frontend monitor",
            f"    bind {HOST}:{self.monitor_port}",
            "    monitor-uri /ok",
            "backend chat",
            "    balance roundrobin",
            # HTTP/1.1 with a Host: picows answers an HTTP/1.0 check without one with 400
            "    option httpchk",
            f"    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host {HOST}",
            "    http-check expect status 200",
            "    http-response set-header X-Chatsrv-Backend %s",
        ]
        lines += [f"    server {name} {HOST}:{port}" for name, port in self.backends]
        return "\n".join(lines) + "\n"

    def write_config(self) -> Path:
        if self.port is None:
            self.port, self.monitor_port = free_port(), free_port()
            while self.monitor_port == self.port:
                self.monitor_port = free_port()
        self.conf_path.write_text(self.config_text())
        return self.conf_path

    def check(self) -> None:
        """`haproxy -c -f cfg`: raises ConfigError with haproxy's message if refused."""
        self.write_config()
        r = subprocess.run([haproxy_binary(), "-c", "-f", str(self.conf_path)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise ConfigError((r.stderr or r.stdout).strip())

    # --------------------------------------------------------------- lifecycle
    def start(self, timeout: float = READY_TIMEOUT) -> "Balancer":
        """Checks the config, runs haproxy in the foreground (-db), waits for its monitor URI."""
        assert not self.alive, "already running"
        self.check()
        self.spawn([haproxy_binary(), "-f", str(self.conf_path), "-db"])
        self.wait_http_ok(self.monitor_port, "/ok", timeout)
        return self

    # ------------------------------------------------------------ backend state
    def admin(self, command: str) -> str:
        """One command on the admin socket (`show servers state chat`, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(str(self.admin_path))
            s.sendall(command.encode() + b"\n")
            out = bytearray()
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def states(self) -> dict[str, bool]:
        """{backend name: up?} as HAProxy sees it now."""
        out = {}
        for line in self.admin("show servers state chat").splitlines():
            f = line.split()
            if len(f) > 5 and not line.startswith("#") and f[1] == "chat":
                out[f[3]] = f[5] == "2"     # srv_op_state 2: running (UP)
        return out

    def wait_states(self, want: dict[str, bool], timeout: float = 5.0) -> None:
        """Waits until each named backend is UP (True) or DOWN (False)."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.states()
            if all(now.get(k) == v for k, v in want.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"backends {now}, wanted {want} within {timeout}s")
            time.sleep(self.check_ms / 4000)

    # ------------------------------------------------------------- addresses
    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"
