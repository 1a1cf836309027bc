"""Several servers under test behind one HAProxy, each with its own data directory and a
fixed port for its whole life (a node restarted after kill -9 comes back where the
balancer expects it), optionally beside a nats-server. What each node is started with
is up to the caller (`node_args(name)`), so the same runner serves today's single-box
servers and the nodes of docs/cluster.md once `--cluster` exists."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

from .balancer import Balancer
from .natsserver import NatsServer
from .server import ServerProc


class LocalCluster:
    """`names` nodes (ServerProc each, data in root/NAME, log root/NAME.log) behind a Balancer
    (root/haproxy, `check_ms` and `client_s` as Balancer's); with `nats=True` a NatsServer (root/nats) is started first, so that
    `node_args` can name its URL (`lambda name: ["--cluster", c.nats.url, "--node", name]`)."""

    def __init__(self, root, names: Sequence[str] = ("n1", "n2", "n3"), *,
                 node_args: Optional[Callable[[str], list]] = None, nats: bool = False,
                 env: Optional[dict] = None, check_ms: int = 200, client_s: float = 30):
        self.root = Path(root)
        self.names = list(names)
        self.node_args = node_args or (lambda name: [])
        self.nats = NatsServer(self.root / "nats") if nats else None
        self.env = env
        self.check_ms = check_ms
        self.client_s = client_s
        self.nodes: dict[str, ServerProc] = {}
        self.balancer: Optional[Balancer] = None

    def start(self) -> "LocalCluster":
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if self.nats is not None:
                self.nats.start()
            for name in self.names:
                s = ServerProc(self.root / name, self.node_args(name), env=self.env,
                               log_path=self.root / f"{name}.log")
                s.name = name
                self.nodes[name] = s
            # side by side: a start is mostly waiting for imports and /healthz
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                for f in [pool.submit(s.start) for s in self.nodes.values()]:
                    f.result()
            self.balancer = Balancer(self.root / "haproxy", [(n, s.port) for n, s in self.nodes.items()],
                                     check_ms=self.check_ms, client_s=self.client_s).start()
            self.balancer.wait_states({n: True for n in self.names})
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> dict[str, int]:
        """Stops the balancer, every node (SIGTERM) and nats-server; returns each node's exit code."""
        codes = {}
        if self.balancer is not None:
            self.balancer.stop()
        for name, s in self.nodes.items():
            if s.proc is not None:
                codes[name] = s.stop() if s.alive else s.proc.returncode
        if self.nats is not None:
            self.nats.stop()
        return codes

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --------------------------------------------------------------- one node
    def kill9(self, name: str) -> None:
        self.nodes[name].kill9()

    def restart(self, name: str) -> ServerProc:
        """Starts a stopped or killed node again on its port and data directory."""
        s = self.nodes[name]
        return s.start(port=s.port)

    def node_url(self, name: str) -> str:
        """The node's own /ws, bypassing the balancer (to pin a user to a node)."""
        return self.nodes[name].url

    @property
    def url(self) -> str:
        """/ws through the balancer."""
        return self.balancer.url

    def logs(self) -> str:
        parts = [f"--- {n}\n{s.log_tail()}" for n, s in self.nodes.items()]
        if self.balancer is not None:
            parts.append(f"--- haproxy\n{self.balancer.log_tail()}")
        if self.nats is not None:
            parts.append(f"--- nats-server\n{self.nats.log_tail()}")
        return "\n".join(parts)
