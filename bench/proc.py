"""The benchmark side of server processes: which cores the server and the generator run on,
the server runners (tests/harness/server.py, pinned to the server core), and CPU and RSS
read from /proc.

CPU is utime + stime of the whole process (every thread) from /proc/PID/stat; RSS from /proc/PID/status.
Servers always listen on 127.0.0.1, on a port in 20000-30000 (below the ephemeral range).
"""
import os
import resource
import sys

from tests.harness.net import HOST, free_port  # noqa: F401 - HOST and free_port are used by the workloads
from tests.harness.server import ServerProc

CLK_TCK = os.sysconf("SC_CLK_TCK")
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


def _bench_env():
    # the harness drops CHATSRV_* variables; a benchmark run keeps them (GC and GIL experiments)
    return {k: v for k, v in os.environ.items() if k.startswith("CHATSRV_")}


class BareServer(ServerProc):
    """bench/bare_server.py: the same picows settings as chatsrv, no chat logic."""

    name = "bare"

    def __init__(self, read_buffer=0, lean=False):
        super().__init__(cwd=REPO, cpu=cores()[0], env=_bench_env())
        self.read_buffer = read_buffer
        self.lean = lean

    def argv(self, port):
        argv = [sys.executable, "-m", "bench.bare_server", "--port", str(port)]
        if self.read_buffer:
            argv += ["--read-buffer", str(self.read_buffer)]
        if self.lean:
            argv += ["--lean"]
        return argv


def bare_server(read_buffer=0, lean=False):
    return BareServer(read_buffer, lean)


# The checkout whose chatsrv is measured (python -m chatsrv runs from there); --server-dir changes it.
CHATSRV_DIR = os.environ.get("BENCH_CHATSRV_DIR", REPO)


def chatsrv_server(data, extra=()):
    # the per-connection token bucket would cap a benchmark connection at 100 msg/s
    args = ["--rate", "1000000", "--burst", "1000000", *extra]
    return ServerProc(data, args, cwd=CHATSRV_DIR, cpu=cores()[0], env=_bench_env())


def chatsrv_available():
    d = os.path.join(CHATSRV_DIR, "chatsrv")
    has_so = any(".so" in f for _, _, files in os.walk(d) for f in files) if os.path.isdir(d) else False
    has_server = os.path.exists(os.path.join(d, "server.py"))
    has_main = os.path.exists(os.path.join(d, "__main__.py")) or os.path.exists(os.path.join(d, "cli.py"))
    return has_so and has_server and has_main
