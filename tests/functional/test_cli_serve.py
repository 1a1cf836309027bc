"""`chatsrv serve` as an operator meets it: a --config file used by a real server, and one
line on stderr (no traceback) for a port in use, a bad value, an unusable data directory."""
import os
import socket
import subprocess
import sys

from conftest import ROOT, ServerProc, http_get
from harness.net import free_port


def serve(*args, env=None, prefix=()):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSRV_")}
    full_env.update(env or {})
    return subprocess.run([*prefix, sys.executable, "-m", "chatsrv", "serve", *args], cwd=ROOT, env=full_env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)


def one_line_error(r, rc, *words):
    assert r.returncode == rc, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("chatsrv serve: ") and all(w in last for w in words), r.stderr
    return last


async def test_config_file_under_env_and_flags_drives_a_real_server(tmp_path, connect):
    cfgfile = tmp_path / "chatsrv.toml"
    cfgfile.write_text('port = 1\nmetrics = false\nmax_frame_bytes = "1KiB"\n')
    # ServerProc's --port flag beats the file's 1, the environment beats its frame size;
    # the file turns /metrics off
    srv = ServerProc(tmp_path / "data", [], env={"CHATSRV_CONFIG": str(cfgfile),
                                                 "CHATSRV_MAX_FRAME_BYTES": "64KiB"}).start()
    try:
        assert http_get(srv.port, "/metrics")[0] == 404
        c = await connect(srv)
        assert await c.err("auth", token="x" * 2000) == "bad_request"     # an answer, not close 1009
    finally:
        assert srv.stop() == 0


def test_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = serve("--port", str(port), "--data", str(tmp_path / "d"))
    one_line_error(r, 1, f"cannot listen on 127.0.0.1:{port}: address already in use")


def test_bad_value(tmp_path):
    # every kind of bad value goes through config.resolve (tests/unit/test_config.py)
    one_line_error(serve(env={"CHATSRV_PING_TIMEOUT": "soon"}), 2, "env CHATSRV_PING_TIMEOUT: expected a time")


def test_unusable_data_directory(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("")
    one_line_error(serve("--port", str(free_port()), "--data", str(f)), 1,
                   f"cannot use data directory {f}: not a directory")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    # root reads anything: drop the capabilities that let it, so the mode counts
    prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search") if os.geteuid() == 0 else ()
    try:
        r = serve("--port", str(free_port()), "--data", str(locked / "data"), prefix=prefix)
    finally:
        locked.chmod(0o700)
    one_line_error(r, 1, "cannot use data directory", "permission denied")


def test_map_size_below_the_minimum(tmp_path):
    last = one_line_error(serve("--port", str(free_port()), "--data", str(tmp_path / "d"), "--map-size", "1000"),
                          2, "--map-size", "at least 1MiB")
    assert "MDB_" not in last


def _modes(root):
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]}


def test_data_directory_and_its_files_are_private(tmp_path):
    """Messages and password hashes are the owner's alone: the directory 0700, its files
    0600, whatever the umask, and also for a directory made before by an older version."""
    old_umask = os.umask(0o022)
    try:
        fresh = ServerProc(tmp_path / "fresh", []).start()
        assert fresh.stop() == 0
        modes = _modes(tmp_path / "fresh")
        assert {"db/data.mdb", "db/lock.mdb", "token.key"} <= set(modes), modes
        assert all(m == (0o700 if (tmp_path / "fresh" / p).is_dir() else 0o600) for p, m in modes.items()), modes
        # a data directory left readable by an older version is tightened at start
        for p in [tmp_path / "fresh", *(tmp_path / "fresh").rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        again = ServerProc(tmp_path / "fresh", []).start()
        modes = _modes(tmp_path / "fresh")
        assert again.stop() == 0
        assert all(m == (0o700 if (tmp_path / "fresh" / p).is_dir() else 0o600) for p, m in modes.items()), modes
    finally:
        os.umask(old_umask)
