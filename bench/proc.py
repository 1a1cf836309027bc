"""Server processes under test: start pinned to the server core, wait until ready, read CPU and RSS, stop.

CPU is utime + stime of the whole process (every thread) from /proc/PID/stat; RSS from /proc/PID/status.
Servers always listen on 127.0.0.1, on a port in 20000-30000 (below the ephemeral range).
"""
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_AVAIL = sorted(os.sched_getaffinity(0))   # read at import, before the generator pins itself


def cores():
    """(server core, generator core), or (None, None) on a one-core machine."""
    if len(_AVAIL) >= 2:
        return _AVAIL[0], _AVAIL[1]
    return None, None


def pin_generator():
    _, gen = cores()
    if gen is not None:
        os.sched_setaffinity(0, {gen})
    return gen


def free_port():
    for _ in range(200):
        port = random.randint(20000, 30000)
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in 20000-30000")


def proc_cpu(pid):
    """Seconds of CPU (user + system, all threads) used so far by pid."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid):
    """Resident set size in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def http_get(port, path, timeout=1.0):
    """(status, body) of a plain GET on 127.0.0.1:port, or (None, b'') if it fails."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body
    except (OSError, ValueError, IndexError):
        return None, b""


class Server:
    """One server subprocess, pinned with taskset to the server core."""

    def __init__(self, name, argv, port, health_path="/healthz", cwd=REPO, log_dir=None):
        self.name = name
        self.argv = argv
        self.port = port
        self.health_path = health_path
        self.cwd = cwd
        self.proc = None
        self.log_path = os.path.join(log_dir or tempfile.gettempdir(), f"bench-{name}-{port}.log")

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=30.0):
        core, _ = cores()
        cmd = list(self.argv)
        if core is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(core)] + cmd   # taskset execs: the pid is the server's
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            status, _ = http_get(self.port, self.health_path, timeout=0.5)
            if status == 200:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.tail()}")

    def tail(self, n=1500):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def rss(self):
        return proc_rss(self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def bare_server(port, read_buffer=0, lean=False):
    argv = [sys.executable, "-m", "bench.bare_server", "--port", str(port)]
    if read_buffer:
        argv += ["--read-buffer", str(read_buffer)]
    if lean:
        argv += ["--lean"]
    return Server("bare", argv, port)


# The checkout whose chatsrv is measured (python -m chatsrv runs from there); --server-dir changes it.
CHATSRV_DIR = os.environ.get("BENCH_CHATSRV_DIR", REPO)


def chatsrv_server(port, data, extra=()):
    argv = [sys.executable, "-m", "chatsrv", "serve", "--host", HOST, "--port", str(port), "--data", data,
            # the per-connection token bucket would cap a benchmark connection at 100 msg/s
            "--rate", "1000000", "--burst", "1000000"] + list(extra)
    return Server("chatsrv", argv, port, cwd=CHATSRV_DIR)


def chatsrv_available():
    d = os.path.join(CHATSRV_DIR, "chatsrv")
    has_so = any(f.startswith("_core") and f.endswith(".so") for f in os.listdir(d)) if os.path.isdir(d) else False
    has_server = os.path.exists(os.path.join(d, "server.py"))
    has_main = os.path.exists(os.path.join(d, "__main__.py")) or os.path.exists(os.path.join(d, "cli.py"))
    return has_so and has_server and has_main
