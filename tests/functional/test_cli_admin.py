"""The operator's commands (chatsrv/admin.py through the `chatsrv` command) against a real
data directory: beside a running server where that is safe (accounts, passwords,
disable, sessions, logout, stats, check, backup), refused while it runs where it is not
(delete, restore), and what each did checked over the server's socket."""
import asyncio
import io
import re
import subprocess
import sys
import time

from chatsrv import cli
from chatsrv.proto import message_record
from chatsrv.store.lmdb import LmdbStore
from chatsrv.store.lmdb import layout as L
from conftest import ROOT, uname
from harness.client import PASSWORD, Client, dconv

NEW_PASSWORD = "a brand new password"


def run(monkeypatch, capsys, *argv, stdin=""):
    """`chatsrv ARGV` in this process (the server is another): (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


async def test_commands_beside_a_running_server(make_server, login, connect, monkeypatch, capsys, tmp_path):
    srv = make_server("--no-signup")
    data = str(srv.data_dir)

    def cmd(*argv, stdin=""):
        words = 2 if argv[0] == "user" else 1          # --data goes after the command's words
        return run(monkeypatch, capsys, *argv[:words], "--data", data, *argv[words:], stdin=stdin)

    ann, bob, cat = uname("ann"), uname("bob"), uname("cat")
    for name in (ann, bob):
        assert cmd("user", "add", name, stdin=PASSWORD + "\n")[:2] == (0, f"created {name}\n")
    assert cmd("adduser", cat, stdin=PASSWORD + "\n")[0] == 0                     # the old name still works
    rc, _, err = cmd("user", "add", ann, stdin=PASSWORD + "\n")
    assert rc == 1 and err == f"chatsrv user add: {ann} exists\n"
    a = await login(srv, ann, signup=False)
    b = await login(srv, bob, signup=False)
    c = await login(srv, cat, signup=False)
    for i in range(3):
        await a.send_msg(f"hi {i}", to=bob)
    group = (await a.ok("group_create", name="trio", members=[bob, cat]))["conv"]
    await b.send_msg("in the group", conv=group)
    # a second device of ann comes and goes: its last seen is recorded
    a2 = await login(srv, ann, device="tablet", signup=False)
    await a2.close()

    rc, out, _ = cmd("user", "list")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rc == 0 and rows[ann][-2:] == ["2", "active"] and rows[cat][-1] == "active"

    # the end of a connection is written by the server's writer soon after it closes
    deadline = time.monotonic() + 5
    while True:
        rc, out, _ = cmd("sessions", ann)
        lines = out.splitlines()
        devices = {line.split()[0]: line for line in lines[1:]}
        if re.search(r"\d{4}-\d\d-\d\d \d\d:\d\dZ", devices["tablet"]) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert rc == 0 and lines[0].split() == ["DEVICE", "LAST", "SEEN", "READ/INBOX", "PUSH"]
    assert set(devices) == {"dev1", "tablet"}
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\dZ", devices["tablet"]), devices
    assert "never" in devices["dev1"]                    # still connected

    rc, out, _ = cmd("stats")
    assert rc == 0 and "users:          3 active, 0 disabled, 0 deleted" in out
    assert "conversations:  2" in out and "messages:       5 (" in out and "map use:" in out

    rc, out, err = cmd("check")
    assert rc == 0 and out.strip().endswith("ok") and "messages checked: 5/5" in err

    # a new password works at once; --sign-out revokes every device of bob
    rc, out, _ = cmd("user", "passwd", "--sign-out", bob, stdin=NEW_PASSWORD + "\n")
    assert rc == 0 and "signed out dev1" in out
    assert await (await connect(srv)).err("auth", token=b.token) == "unauthorized"
    assert await (await connect(srv)).err("login", user=bob, password=PASSWORD, device="x") == "unauthorized"
    await (await connect(srv)).ok("login", user=bob, password=NEW_PASSWORD, device="x")

    # logout of one device: its token stops working, the other device's does not
    rc, out, err = cmd("logout", ann, "tablet")
    assert rc == 0 and "signed out tablet" in out and "server is running" in out
    assert await (await connect(srv)).err("auth", token=a2.token) == "unauthorized"
    await (await connect(srv)).auth(a.token)

    # a disabled account can neither log in nor authenticate; enabled again, it can
    assert cmd("user", "disable", cat)[:2] == (0, f"{cat} disabled\nnote: the server is running: {cat} cannot "
                                                  "log in or authenticate from now on; connections open now stay "
                                                  "until they close (restart the server to end them now)\n")
    assert await (await connect(srv)).err("login", user=cat, password=PASSWORD, device="d") == "forbidden"
    assert await (await connect(srv)).err("auth", token=c.token) == "forbidden"
    assert cmd("user", "enable", cat)[0] == 0
    await (await connect(srv)).auth(c.token)

    # delete changes what the running server keeps in memory: refused, the account untouched
    rc, _, err = cmd("user", "delete", "--yes", bob)
    assert rc == 1 and "a server is running" in err and "stop it first" in err
    await (await connect(srv)).ok("login", user=bob, password=NEW_PASSWORD, device="y")

    # backup beside the server, restore refused while one runs on the target
    dest = tmp_path / "nightly"
    assert cmd("backup", str(dest))[0] == 0
    rc, _, err = cmd("restore", "--force", str(dest))
    assert rc == 1 and "a server is running" in err

    # stopped: delete bob
    assert srv.stop() == 0
    rc, out, _ = cmd("user", "delete", "--yes", bob)
    assert rc == 0 and "left 1 group(s) and 1 direct conversation(s)" in out
    srv.restart()
    ann_token, a = a.token, await connect(srv)
    await a.auth(ann_token)                          # tokens survive the restart and the delete of bob
    info = await a.ok("group_info", conv=group)
    assert info["members"] == [ann, cat] and info["owner"] == ann
    hist = (await a.ok("history", conv=dconv(ann, bob)))["messages"]
    assert [m["body"] for m in hist] == ["hi 0", "hi 1", "hi 2"]     # their conversation stays with ann
    listed = {x["conv"]: x for x in (await a.ok("convs"))["convs"]}
    assert listed[dconv(ann, bob)]["peer"] == bob
    assert await (await connect(srv)).err("login", user=bob, password=NEW_PASSWORD, device="z") == "unauthorized"
    assert await a.err("send", to=bob, body="anyone?", cid="c1") == "not_found"
    assert await a.err("group_add", conv=group, users=[bob]) == "not_found"
    rc, out, _ = cmd("user", "list")
    assert re.search(rf"^{bob}\s.*\bdeleted$", out, re.M)
    assert srv.stop() == 0
    rc, out, _ = cmd("check")
    assert rc == 0, out

    # restore the nightly backup into a fresh directory: it is checked, and serves bob again
    fresh = tmp_path / "restored"
    rc, out, _ = run(monkeypatch, capsys, "restore", "--data", str(fresh), str(dest))
    assert rc == 0 and "check: ok" in out
    rc, _, err = run(monkeypatch, capsys, "restore", "--data", str(fresh), str(dest))
    assert rc == 1 and "already holds a database; --force" in err
    # --force over a stopped server's directory: what was there is kept aside, inside it
    rc, out, _ = cmd("restore", "--force", str(dest))
    assert rc == 0 and "check: ok" in out
    aside = [p for p in srv.data_dir.iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1 and (aside[0] / "db" / "data.mdb").exists()
    restored = make_server(data=fresh)
    await (await connect(restored)).ok("login", user=bob, password=NEW_PASSWORD, device="back")


def test_check_finds_gaps_and_dangling_inbox_entries(make_server, monkeypatch, capsys):
    srv = make_server()
    data = srv.data_dir

    async def traffic():
        a, b = await Client.connect(srv.url), await Client.connect(srv.url)
        na, nb = uname("chk"), uname("chk")
        for c, n in ((a, na), (b, nb)):
            await c.signup(n)
            await c.login(n)
        for i in range(4):
            await a.send_msg(f"m{i}", to=nb)
        await a.close()
        await b.close()
        return dconv(na, nb)

    conv = asyncio.run(traffic())
    assert srv.stop() == 0
    assert run(monkeypatch, capsys, "check", "--data", str(data))[0] == 0
    # damage the database the way a bug would: message 2 of the conversation vanishes
    store = LmdbStore(str(data), 0, message_record)
    with store.env.begin(write=True) as txn:
        assert txn.delete(L.msg(conv.encode(), 2), db=store.dbs["msgs"])
    store.close()
    rc, out, _ = run(monkeypatch, capsys, "check", "--data", str(data))
    assert rc == 1
    assert f"{conv}: seq 3 follows 1" in out
    assert re.search(rf"points at {re.escape(conv)} seq 2, which is not stored", out)


def test_operator_mistakes_are_one_line(tmp_path):
    def chatsrv(*argv, stdin=""):
        return subprocess.run([sys.executable, "-m", "chatsrv", *argv], cwd=ROOT, input=stdin,
                              capture_output=True, text=True, timeout=60)

    r = chatsrv("user", "list", "--data", str(tmp_path / "none"))
    assert r.returncode == 1 and r.stderr.startswith("chatsrv user list: no chatsrv database in")
    assert len(r.stderr.splitlines()) == 1
    r = chatsrv("restore", "--data", str(tmp_path / "d"), str(tmp_path))
    assert r.returncode == 1 and "is not a chatsrv backup" in r.stderr and "Traceback" not in r.stderr
