"""A server under test as a subprocess: `python -m chatsrv serve` on a free loopback port
with its data directory, ready once /healthz answers, stopped with SIGTERM. Benchmarks
subclass it for their bare servers (override `argv`) and pin it to a core (`cpu`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from .net import HOST, free_port, http_get
from .proc import Managed

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 10.0


class ServerProc(Managed):
    """One server subprocess. `env` is added to this process's environment without its
    CHATSRV_* variables (a developer's shell settings must not change a test); `cpu` pins
    the server with taskset; `cwd` is the checkout whose chatsrv runs."""

    name = "chatsrv"

    def __init__(self, data_dir=None, args=(), env: Optional[dict] = None, log_path=None, *,
                 cwd=ROOT, cpu: Optional[int] = None):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.args = list(args)
        self.extra_env = dict(env or {})
        if log_path is None:
            log_path = (self.data_dir.parent / f"{self.data_dir.name}.log" if self.data_dir is not None
                        else Path(tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")[1]))
        self.log_path = Path(log_path)
        self.cwd = str(cwd)
        self.cpu = cpu
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.expect_clean_exit = True

    def argv(self, port: int) -> list[str]:
        return [sys.executable, "-m", "chatsrv", "serve", "--host", HOST, "--port", str(port),
                "--data", str(self.data_dir), *self.args]

    # -------------------------------------------------------------- lifecycle
    def start(self, port: Optional[int] = None, timeout: float = READY_TIMEOUT) -> "ServerProc":
        """Starts and waits for /healthz; a port taken meanwhile is retried on another."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSRV_")}
        env.update(self.extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        last_err = ""
        for attempt in range(4):
            self.port = port if (port is not None and attempt == 0) else free_port()
            cmd = self.argv(self.port)
            if self.cpu is not None and shutil.which("taskset"):
                cmd = ["taskset", "-c", str(self.cpu), *cmd]    # taskset execs: the pid is the server's
            self.spawn(cmd, cwd=self.cwd, env=env)
            if self._wait_ready(timeout):
                return self
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"{self.name} did not answer /healthz within {timeout}s\n{self.log_tail()}")
            last_err = self.log_tail()
            if "address already in use" not in last_err.lower() and "errno 98" not in last_err.lower():
                break
        raise RuntimeError(f"{self.name} exited before it was ready (rc={self.proc.returncode})\n{last_err}")

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

    def restart(self) -> "ServerProc":
        """Start again on the same data directory (after stop() or kill9())."""
        return self.start()

    # -------------------------------------------------------------- addresses
    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"
