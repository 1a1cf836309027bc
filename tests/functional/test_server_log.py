"""The server's log as an operator reads it: --log-format json gives one object per line
(the message's key=value pairs as fields, no secret); a server without push says so
once, at info level, and a normal start warns about nothing."""
import json

from harness.client import PASSWORD


async def test_json_log_lines(make_server, connect, login):
    srv = make_server("--log-format", "json")
    a = await login(srv)
    bad = await connect(srv)
    assert await bad.err("login", user=a.user, password="wrong-Kk3p-password", device="d9") == "unauthorized"
    assert srv.stop() == 0
    lines = [line for line in srv.log_path.read_text().splitlines() if line and not line.startswith("===")]
    records = [json.loads(line) for line in lines]           # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert all(r["ts"].endswith("Z") and r["level"] in ("debug", "info", "warning", "error") for r in records)
    logins = [r for r in records if r["msg"].startswith("login user=")]
    assert [(r["user"], r["device"], r["addr"]) for r in logins] == [(a.user, "dev1", "127.0.0.1")]
    failed = [r for r in records if r["msg"].startswith("login failed")]
    assert [(r["user"], r["addr"]) for r in failed] == [(a.user, "127.0.0.1")]
    text = srv.log_path.read_text()
    for secret in (PASSWORD, "wrong-Kk3p-password", a.token):
        assert secret not in text
    # push is off on this server: one calm line at start
    push_off = [r for r in records if "push notifications off" in r["msg"]]
    assert len(push_off) == 1 and push_off[0]["level"] == "info"
    assert not [r for r in records if r["level"] in ("warning", "error")], records
