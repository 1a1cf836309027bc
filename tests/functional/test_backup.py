"""`chatsrv backup` of a running server's data: the copy serves the same users, tokens and messages."""
import subprocess
import sys

from conftest import PASSWORD
from harness.client import dconv


async def test_backup_of_a_live_server_restores_everything(make_server, login, connect, tmp_path):
    srv = make_server()
    a = await login(srv)
    b = await login(srv)
    sent = [await a.send_msg(f"keep {i}", to=b.user) for i in range(20)]
    dest = tmp_path / "copy"
    r = subprocess.run([sys.executable, "-m", "chatsrv", "backup", "--data", str(srv.data_dir), str(dest)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # after the copy the live server goes on; the copy must not see this
    await a.send_msg("after the copy", to=b.user)
    assert (dest / "token.key").stat().st_mode & 0o777 == 0o600

    copy = make_server(data=dest)
    c = await connect(copy)
    await c.auth(b.token)                                # tokens survive: the key came along
    msgs, head = await c.backlog()
    assert head == 20
    hist = (await c.ok("history", conv=dconv(a.user, b.user)))["messages"]
    assert [(m["seq"], m["body"]) for m in hist] == [(s["seq"], f"keep {i}") for i, s in enumerate(sent)]
    # the copy works as a server of its own
    d = await login(copy, a.user, device="restored", signup=False, password=PASSWORD)
    assert (await d.send_msg("on the copy", to=b.user))["seq"] == 21


def test_backup_refuses_to_overwrite_or_copy_nothing(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "chatsrv", "backup", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    r = run("--data", str(tmp_path / "nothing"), str(tmp_path / "dest"))
    assert r.returncode == 1 and "no chatsrv database" in r.stderr
    assert not (tmp_path / "dest").exists()


def test_backup_and_restore_copy_the_attachment_files(make_server, tmp_path):
    """The files under DATA/files/ (content-addressed, docs/protocol.md §13.3) go into a
    backup of a live server and come back with a restore, byte for byte."""
    import hashlib
    import os

    srv = make_server()
    blobs = {}
    for i in range(3):
        data = os.urandom(50_000 + i)
        sha = hashlib.sha256(data).hexdigest()
        shard = srv.data_dir / "files" / sha[:2]
        shard.mkdir(parents=True, exist_ok=True)
        (shard / sha[2:]).write_bytes(data)
        blobs[sha] = data
    dest = tmp_path / "copy"
    r = subprocess.run([sys.executable, "-m", "chatsrv", "backup", "--data", str(srv.data_dir), str(dest)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for sha, data in blobs.items():
        assert (dest / "files" / sha[:2] / sha[2:]).read_bytes() == data
    restored = tmp_path / "restored"
    r = subprocess.run([sys.executable, "-m", "chatsrv", "restore", "--data", str(restored), str(dest)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for sha, data in blobs.items():
        assert (restored / "files" / sha[:2] / sha[2:]).read_bytes() == data
