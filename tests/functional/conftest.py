"""Fixtures for the functional tests: a real `chatsrv serve` subprocess on a loopback
port with a real LMDB in a temporary directory, and a tracked factory of test clients.
"""
from __future__ import annotations

import http.client
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import pytest

from netutil import free_port
from wsclient import Client, PASSWORD

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 10.0

# Options for the shared server: high request rates so that pipelined tests are not
# rate limited, and a high login-failure threshold so that the tests of wrong
# credentials (all from 127.0.0.1) do not lock the address out.
SHARED_ARGS = ["--rate", "100000", "--burst", "100000", "--login-failures", "1000"]


def pytest_asyncio_loop_factories(config, item):
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return None
    return {"uvloop": uvloop.new_event_loop}


def http_get(port: int, path: str, timeout: float = 2.0,
             headers: Optional[dict] = None) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


class ServerProc:
    """One `python -m chatsrv serve` subprocess on a data directory."""

    def __init__(self, data_dir: Path, args=(), env: Optional[dict] = None,
                 log_path: Optional[Path] = None):
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.log_path = Path(log_path or (self.data_dir.parent / f"{self.data_dir.name}.log"))
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.expect_clean_exit = True

    # -------------------------------------------------------------- lifecycle
    def start(self, port: Optional[int] = None) -> "ServerProc":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSRV_")}
        env.update(self.extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        last_err = ""
        for attempt in range(4):
            self.port = port if (port is not None and attempt == 0) else free_port()
            cmd = [sys.executable, "-m", "chatsrv", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--data", str(self.data_dir), *self.args]
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== start {' '.join(cmd)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(cmd, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT, env=env)
            if self._wait_ready(READY_TIMEOUT):
                return self
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"server did not answer /healthz within {READY_TIMEOUT}s\n"
                                   f"{self.log_tail()}")
            last_err = self.log_tail()
            if "address already in use" not in last_err.lower() and "errno 98" not in last_err.lower():
                break
        raise RuntimeError(f"server exited before it was ready (rc={self.proc.returncode})\n{last_err}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, body, _ = http_get(self.port, "/healthz", timeout=0.5)
                if status == 200 and body.strip() == b"ok" and self.proc.poll() is None:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM; returns the exit code (kills and raises when it hangs)."""
        p = self.proc
        if p is None or p.poll() is not None:
            return p.returncode if p is not None else 0
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"server did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")

    def kill9(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def restart(self) -> "ServerProc":
        """Start again on the same data directory (after stop() or kill9())."""
        return self.start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -------------------------------------------------------------- addresses
    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])


def _finish(server: ServerProc) -> None:
    if not server.alive:
        if server.expect_clean_exit and server.proc is not None and server.proc.returncode not in (0, -9):
            pytest.fail(f"server died with exit code {server.proc.returncode}\n{server.log_tail()}")
        return
    rc = server.stop()
    if server.expect_clean_exit:
        assert rc == 0, f"server exit code after SIGTERM: {rc} (expected 0)\n{server.log_tail()}"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A shared server for most tests (use unique user names: `uname()`)."""
    base = tmp_path_factory.mktemp("shared")
    s = ServerProc(base / "data", SHARED_ARGS, log_path=base / "server.log").start()
    yield s
    _finish(s)


@pytest.fixture
def make_server(tmp_path):
    """Factory for a function-scoped server with special flags:
    `srv = make_server("--rate", "5", env={...})`.  Stopped with SIGTERM at teardown,
    where exit code 0 is asserted."""
    servers: list[ServerProc] = []
    n = itertools.count()

    def _make(*args, env: Optional[dict] = None, start: bool = True, data: Optional[Path] = None) -> ServerProc:
        i = next(n)
        s = ServerProc(data or tmp_path / f"data{i}", args, env=env, log_path=tmp_path / f"server{i}.log")
        servers.append(s)
        if start:
            s.start()
        return s

    yield _make
    errors = []
    for s in servers:
        try:
            _finish(s)
        except BaseException as e:  # noqa: BLE001 - report all, then fail
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors))


@pytest.fixture
async def connect():
    """`c = await connect(server, origin=None)`: a tracked test client; at teardown every
    client is closed and any protocol violation it saw (event with an id, non-JSON
    frame, binary frame...) fails the test."""
    clients: list[Client] = []

    async def _connect(srv: ServerProc, **kw) -> Client:
        c = await Client.connect(srv.url, **kw)
        clients.append(c)
        return c

    yield _connect
    violations = []
    for c in clients:
        violations += c.violations
        await c.close()
    assert not violations, f"protocol violations seen by the client: {violations}"


_name_counter = itertools.count(1)
_run = uuid.uuid4().hex[:6]


def uname(prefix: str = "u") -> str:
    """A fresh valid user name (^[a-z0-9_]{3,32}$), unique across runs."""
    name = f"{prefix[:12]}_{_run}{next(_name_counter)}"
    assert len(name) <= 32
    return name


@pytest.fixture
def user():
    return uname


@pytest.fixture
async def login(connect):
    """`c = await login(server, name=None, device="dev1", signup=True)`: connect, sign up
    (unless signup=False), log in, and consume the backlog; returns the client with
    `c.user`, `c.token`, `c.backlog_msgs` and `c.synced_inbox` set."""

    async def _login(srv: ServerProc, name: Optional[str] = None, device: str = "dev1",
                     signup: bool = True, password: str = PASSWORD) -> Client:
        name = name or uname()
        c = await connect(srv)
        if signup:
            await c.signup(name, password)
        await c.login(name, password, device)
        c.backlog_msgs, c.synced_inbox = await c.backlog()
        return c

    return _login
