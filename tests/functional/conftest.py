"""Fixtures for the functional tests: a real `chatsrv serve` subprocess on a loopback
port with a real LMDB in a temporary directory (tests/harness/server.py), and a tracked
factory of test clients (tests/harness/client.py). Tests import `uname`, `http_get`,
`ServerProc` and `PASSWORD` from here.
"""
from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Optional

import pytest

from harness.client import Client, PASSWORD
from harness.net import http_get  # noqa: F401 - imported by the tests
from harness.server import ROOT, ServerProc  # noqa: F401 - ROOT is imported by the tests

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
