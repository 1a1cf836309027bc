"""What every long-lived subprocess under test shares (a chatsrv server, nats-server, HAProxy):
its log file, SIGTERM with a deadline, SIGKILL, liveness and the tail of its log for a
failure message. Starting and readiness are each one's own."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

from .net import http_get


class Managed:
    """Base of a subprocess under test; a subclass sets `name`, `log_path` and `proc`, and
    defines `start()` (returning self)."""

    name = "process"
    proc: Optional[subprocess.Popen] = None
    log_path: Path

    def start(self):
        raise NotImplementedError

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
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no flush; what is on disk is what a crash leaves."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def spawn(self, argv: list, **kw) -> subprocess.Popen:
        """Starts argv with stdout and stderr appended to the log, after a line naming it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {' '.join(map(str, argv))}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, **kw)
        return self.proc

    def wait_http_ok(self, port: int, path: str, timeout: float) -> None:
        """Until GET path on port answers 200; raises with the log's tail if the process exits
        first or the time runs out (and then kills it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited (rc={self.proc.returncode})\n{self.log_tail()}")
            try:
                if http_get(port, path, timeout=0.5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.kill9()
        raise RuntimeError(f"{self.name} not ready within {timeout}s\n{self.log_tail()}")
