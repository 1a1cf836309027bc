"""One server per data directory: a second `chatsrv serve` on the same directory refuses
to start (two writers would assign the same seqs and lose acknowledged messages), and
offline tools never create an empty database."""
import subprocess
import sys

from conftest import PASSWORD, ROOT
from harness.net import free_port
from harness.client import dconv


def run_chatsrv(*args, stdin=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "chatsrv", *args], cwd=str(ROOT), input=stdin,
                          capture_output=True, text=True, timeout=timeout)


async def test_second_server_on_the_same_directory_refuses_and_loses_nothing(make_server, login, connect):
    srv = make_server()
    a = await login(srv)
    b = await login(srv)
    first = [await a.send_msg(f"before {i}", to=b.user) for i in range(5)]

    r = run_chatsrv("serve", "--host", "127.0.0.1", "--port", str(free_port()), "--data", str(srv.data_dir))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another chatsrv server" in lines[0], r.stderr
    assert f"pid {srv.proc.pid}" in lines[0]
    assert "Traceback" not in r.stderr + r.stdout

    # the first server never noticed: it goes on assigning the next seqs
    later = [await a.send_msg(f"after {i}", to=b.user) for i in range(5)]
    assert [m["seq"] for m in first + later] == list(range(1, 11))
    srv.stop()
    srv.restart()     # the lock went with the process
    c = await connect(srv)
    await c.auth(b.token)
    hist = (await c.ok("history", conv=dconv(a.user, b.user)))["messages"]
    assert [m["body"] for m in hist] == [f"before {i}" for i in range(5)] + [f"after {i}" for i in range(5)]


async def test_lock_is_released_by_a_crash(make_server, login):
    srv = make_server()
    a = await login(srv)
    b = await login(srv)
    await a.send_msg("kept", to=b.user)
    srv.kill9()
    srv.restart()     # kill -9 leaves no stale lock behind
    assert srv.alive


def test_adduser_refuses_a_directory_without_a_database(tmp_path):
    target = tmp_path / "typo"
    r = run_chatsrv("adduser", "--data", str(target), "someone", stdin=PASSWORD + "\n")
    assert r.returncode == 1
    assert "no chatsrv database" in r.stderr and "Traceback" not in r.stderr
    assert not target.exists()


def test_backup_of_a_running_server_does_not_copy_its_lock(make_server, tmp_path):
    srv = make_server()
    dest = tmp_path / "copy"
    r = run_chatsrv("backup", "--data", str(srv.data_dir), str(dest))
    assert r.returncode == 0, r.stderr
    assert not (dest / "chatsrv.lock").exists()
    make_server(data=dest)    # the copy serves beside the original
