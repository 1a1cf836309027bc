"""The fault scenarios of `make chaos` (docs/reliability.md): larger and longer than
`make test`, each bounded in time. Collected only with CHATSRV_CHAOS=1 (make chaos), so
that `pytest tests` stays the suite CI runs."""
import os

import pytest

from harness.server import ServerProc

collect_ignore_glob = [] if os.environ.get("CHATSRV_CHAOS") == "1" else ["test_*.py"]


def pytest_asyncio_loop_factories(config, item):
    import uvloop
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def report():
    """`report(name, line)`: one result line per scenario, printed and kept in
    CHATSRV_CHAOS_REPORT (a file) for docs/reliability.md."""
    def _report(name: str, line: str) -> None:
        text = f"{name}: {line}"
        print(text)
        path = os.environ.get("CHATSRV_CHAOS_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(text + "\n")
    return _report


@pytest.fixture
def chat_server(tmp_path):
    """`srv = chat_server(*args)`: a server subprocess on a fresh data directory, stopped
    (if still running) at the end."""
    servers = []

    def _start(*args):
        srv = ServerProc(tmp_path / f"data{len(servers)}", args, log_path=tmp_path / f"server{len(servers)}.log")
        servers.append(srv)
        return srv.start()
    yield _start
    for srv in servers:
        if srv.alive:
            srv.stop(60)
