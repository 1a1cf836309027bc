"""The server's limits and settings for clients (protocol §5.3), over a real socket and
over plain HTTP: the `settings` op (before authentication) and GET /settings agree and
follow the flags the server was started with."""
import orjson

from conftest import http_get


def _http_settings(srv):
    status, body, headers = http_get(srv.port, "/settings")
    assert status == 200, (status, body)
    assert headers.get("content-type", "").startswith("application/json"), headers
    return orjson.loads(body)


async def test_settings_before_login_and_over_http_show_the_defaults(server, connect):
    c = await connect(server)
    s = await c.ok("settings")
    assert s == _http_settings(server)
    assert s["version"] == 1
    assert s["signup"] is True
    assert s["push"] is False                 # no --vapid-subject
    assert s["max_message_bytes"] == 16384
    assert s["max_frame_bytes"] == 65536
    assert s["max_group_members"] == 1000
    assert s["history_limit"] == 200
    assert s["typing_interval"] == 2.0


async def test_settings_follow_the_flags(make_server, connect):
    srv = make_server("--no-signup", "--max-message-bytes", "1000", "--max-group-members", "7",
                      "--vapid-subject", "mailto:ops@chatsrv.test")
    c = await connect(srv)
    s = await c.ok("settings")
    assert s == _http_settings(srv)
    assert (s["signup"], s["push"], s["max_message_bytes"], s["max_group_members"]) == (False, True, 1000, 7)
    # what it says is what the server does
    assert await c.err("signup", user="nobody_here", password="long enough") == "forbidden"
