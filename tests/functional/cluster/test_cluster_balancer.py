"""HAProxy in front of several real servers (tests/harness/balancer.py, cluster.py): its config
is checked, new connections go round robin, a WebSocket passes through it and stays up
idle past the plain-HTTP timeout, and a node killed with -9 leaves the rotation and comes
back on its port after a restart. The nodes here are single-box servers, each with its own
data; routing between them is docs/cluster.md's, not this file's."""
from __future__ import annotations

import asyncio

import pytest

from harness.balancer import BACKEND_HEADER, Balancer, ConfigError
from harness.client import Client
from harness.net import http_get

NAMES = ("n1", "n2", "n3")


async def _landed(url: str) -> tuple[Client, str]:
    """Opens a WebSocket through the balancer; (client, the node that took it)."""
    c = await Client.connect(url)
    return c, c.transport.response.headers[BACKEND_HEADER]


def test_config_is_checked(tmp_path):
    b = Balancer(tmp_path, [("n1", 1), ("n 2", 2)])    # a server name with a space
    with pytest.raises(ConfigError):
        b.check()


async def test_round_robin_pass_through_and_a_node_down(local_cluster):
    c = local_cluster(names=NAMES, client_s=0.4)     # plain HTTP idle timeout; upgraded ones get 1h
    port = c.balancer.port
    order = [http_get(port, "/healthz")[2][BACKEND_HEADER] for _ in range(6)]
    assert order[:3] == order[3:] and sorted(order[:3]) == sorted(NAMES), order

    clients = []
    try:
        landed = []
        for i in range(3):
            cl, node = await _landed(c.url)
            clients.append(cl)
            landed.append(node)
            await cl.signup(f"rr_user{i}")              # the protocol through the tunnel
        assert sorted(landed) == sorted(NAMES), landed
        await asyncio.sleep(1.0)                        # idle for 2.5x the HTTP timeout
        for i, cl in enumerate(clients):
            assert (await cl.login(f"rr_user{i}", device="d1"))["user"] == f"rr_user{i}"

        c.kill9("n2")
        c.balancer.wait_states({"n1": True, "n2": False, "n3": True})
        for _ in range(4):
            cl, node = await _landed(c.url)
            clients.append(cl)
            assert node != "n2"
            assert (await cl.ok("settings"))["version"] == 1

        c.restart("n2")
        c.balancer.wait_states({"n2": True})
        seen = set()
        for _ in range(3):
            cl, node = await _landed(c.url)
            clients.append(cl)
            seen.add(node)
        assert "n2" in seen
    finally:
        for cl in clients:
            await cl.close()
