"""Fixtures for the cluster tests: a real nats-server with JetStream (tests/harness/natsserver.py),
nats-py clients on it that reconnect across a nats-server restart, and several servers behind
HAProxy (tests/harness/cluster.py)."""
from __future__ import annotations

import nats
import pytest

from harness.cluster import LocalCluster
from harness.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path):
    """A nats-server with JetStream, `sync_interval: always`, data under tmp_path/nats."""
    s = NatsServer(tmp_path / "nats").start()
    yield s
    if s.alive:
        assert s.stop() == 0, f"nats-server exit code after SIGTERM\n{s.log_tail()}"


@pytest.fixture
async def nats_connect():
    """`nc = await nats_connect(server)`: a nats-py connection that keeps reconnecting (every
    50 ms) while the server is down; every one is closed at teardown. `errors` collects
    what the client reported (a killed server is expected to produce some)."""
    conns = []

    async def _connect(server: NatsServer, **kw):
        errors = []

        async def on_error(e):
            errors.append(e)

        opts = dict(max_reconnect_attempts=-1, reconnect_time_wait=0.05, connect_timeout=2,
                    error_cb=on_error)
        opts.update(kw)
        nc = await nats.connect(server.url, **opts)
        nc.test_errors = errors
        conns.append(nc)
        return nc

    yield _connect
    for nc in conns:
        if not nc.is_closed:
            await nc.close()


@pytest.fixture
def local_cluster(tmp_path):
    """`c = local_cluster(names=("n1", "n2", "n3"), node_args=..., nats=False)`: started servers
    behind HAProxy; stopped at teardown, where each node still running must exit 0."""
    clusters = []

    def _make(**kw) -> LocalCluster:
        c = LocalCluster(tmp_path / f"cluster{len(clusters)}", **kw)
        clusters.append(c)
        return c.start()

    yield _make
    for c in clusters:
        alive = {n for n, s in c.nodes.items() if s.alive}
        codes = c.stop()
        bad = {n: rc for n, rc in codes.items() if n in alive and rc != 0}
        assert not bad, f"nodes exited with {bad}\n{c.logs()}"
