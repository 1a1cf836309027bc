"""The server's log, even at debug level, never holds a password, a token or a message body."""
from harness.client import dconv


async def test_no_secret_reaches_the_log(make_server, connect, login):
    srv = make_server("--log-level", "debug")
    secret_pw = "pw-Zq8vN3kX-never-logged"
    a = await connect(srv)
    await a.signup("logsec_alice", secret_pw)
    await a.login("logsec_alice", secret_pw, "d1")
    await a.backlog()
    b = await login(srv, "logsec_bob")
    bodies = ["body-Hq2w-first-secret", "body-Pp7e-second-secret"]
    for i, body in enumerate(bodies):
        await a.send_msg(body, to=b.user, cid=f"cid-{i}")
    assert await a.err("login", user="logsec_alice", password="wrong-Yy5t-password", device="d2") == "bad_request"
    bad = await connect(srv)
    assert await bad.err("login", user="logsec_alice", password="wrong-Yy5t-password", device="d2") == "unauthorized"
    c = await connect(srv)
    await c.auth(a.token)
    await c.backlog()
    hist = (await c.ok("history", conv=dconv(a.user, b.user)))["messages"]
    assert [m["body"] for m in hist] == bodies
    await c.ok("logout")
    srv.stop()
    log = srv.log_path.read_text(errors="replace")
    assert "login user=logsec_alice" in log            # the log is real and was written
    for secret in [secret_pw, "wrong-Yy5t-password", a.token, a.token.split(".")[1], b.token, *bodies]:
        assert secret not in log, f"{secret!r} appears in the server log"
