"""Bad input at the frame and JSON level: malformed JSON, non-objects, unknown ops,
oversize, fragmented, invalid UTF-8, binary, CLOSE handling."""
import asyncio
import time

import orjson
import pytest
from picows import WSMsgType, WSCloseCode

from conftest import uname
from harness.client import PASSWORD, dconv


async def _still_works(c):
    """The connection is open and answers a request."""
    r = await c.req("signup", user=uname("alive"), password=PASSWORD)
    assert "ok" in r, r


# ----------------------------------------------------------------------------- bad_request
@pytest.mark.parametrize("raw", [
    b'{"id": 1, "op": ',            # truncated JSON
    b'not json at all',
    b'',                            # empty frame
    b'[1, 2, 3]',                   # array
    b'"a string"',
    b'42',
    b'null',
    b'{"id": 1, "op": "convs"} trailing',
])
async def test_malformed_or_non_object_gets_bad_request_id_null(server, connect, raw):
    c = await connect(server)
    c.send_text(raw)
    r = await c.next_orphan()
    assert r["err"]["code"] == "bad_request"
    assert "id" in r and r["id"] is None
    await _still_works(c)
    assert not c.disconnected


async def test_bad_request_keeps_connection_authenticated(server, login):
    a = await login(server)
    a.send_text(b'{"id": 9, "op": "convs"')     # malformed
    r = await a.next_orphan()
    assert r["id"] is None and r["err"]["code"] == "bad_request"
    assert (await a.ok("convs"))["convs"] == []


@pytest.mark.parametrize("obj,expect_id", [
    ({"id": 5}, 5),                                 # no op
    ({"id": 6, "op": 5}, 6),                        # op not a string
    ({"id": 7, "op": "no_such_op"}, 7),             # unknown op
    ({"id": "str-id", "op": "no_such_op"}, "str-id"),
    ({"op": "no_such_op"}, None),                   # no id -> id null
    ({"id": 8, "op": None}, 8),
])
async def test_unknown_or_missing_op(server, login, obj, expect_id):
    a = await login(server)
    a.send_json(obj)
    r = await a.next_orphan() if expect_id is None else await _reply_with_id(a, expect_id)
    assert r["id"] == expect_id and "id" in r
    assert r["err"]["code"] == "bad_request"
    assert (await a.ok("convs"))["convs"] == []


async def _reply_with_id(c, rid):
    def pred():
        for i, r in enumerate(c.orphans):
            if r.get("id") == rid:
                return c.orphans.pop(i)
        return None
    return await c._wait(pred, 5.0, f"reply with id {rid!r}")


async def test_request_without_id_answered_with_id_null(server, login):
    a = await login(server)
    a.send_json({"op": "convs"})
    r = await a.next_orphan()
    assert "id" in r and r["id"] is None
    await a.no_event("msg", within=0.05)
    assert not a.orphans, f"more than one reply: {a.orphans}"


@pytest.mark.parametrize("bad_id", [[1], {"x": 1}, 1.5, True])
async def test_id_of_wrong_type(server, login, bad_id):
    a = await login(server)
    a.send_json({"id": bad_id, "op": "convs"})
    r = await a.next_orphan()
    assert "err" in r and r["err"]["code"] == "bad_request", r
    assert (await a.ok("convs"))["convs"] == []


async def test_string_and_int_ids_echoed(server, login):
    a = await login(server)
    r = await a.req("convs", rid="abc-123")
    assert r["id"] == "abc-123" and "ok" in r
    r = await a.req("convs", rid=0)
    assert r["id"] == 0 and "ok" in r
    r = await a.req("convs", rid=2**40)
    assert r["id"] == 2**40 and "ok" in r


async def test_wrong_argument_types_after_auth(server, login):
    a = await login(server)
    b = await login(server)
    await a.send_msg("x", to=b.user)
    conv = dconv(a.user, b.user)
    for op, args in [
        ("send", {"to": [b.user], "body": "x", "cid": "w1"}),
        ("send", {"conv": {"c": conv}, "body": "x", "cid": "w2"}),
        ("send", {"to": b.user, "body": ["x"], "cid": "w3"}),
        ("ack", {"upto": None}),
        ("ack", {"upto": [1]}),
        ("history", {"conv": None}),
        ("history", {"conv": conv, "limit": None, "before": "x"}),
    ]:
        assert await a.err(op, **args) == "bad_request", (op, args)
    # args sent as a non-object in place of the whole request fields are refused too
    a.send_json({"id": 99, "op": "send", "to": b.user, "body": 12, "cid": 3})
    r = await _reply_with_id(a, 99)
    assert r["err"]["code"] == "bad_request"
    await b.event("msg")                 # the first, valid one
    await b.no_event("msg", within=0.2)  # nothing else got through


# ----------------------------------------------------------------------------- frames
async def test_binary_frame_closes_1003(server, login):
    a = await login(server)
    a.send_frame(WSMsgType.BINARY, orjson.dumps({"id": 1, "op": "convs"}))
    assert await a.closed(3) == 1003


async def test_binary_frame_before_auth_closes_1003(server, connect):
    c = await connect(server)
    c.send_frame(WSMsgType.BINARY, b"\x00\x01")
    assert await c.closed(3) == 1003


async def test_invalid_utf8_closes_1007(server, login):
    a = await login(server)
    a.send_text(b'{"id": 1, "op": "convs", "x": "\xff\xfe"}')
    assert await a.closed(3) == 1007


async def test_invalid_utf8_overlong_and_surrogate_close_1007(server, connect):
    for bad in (b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"'):
        c = await connect(server)
        c.send_text(b'{"id": 1, "op": "signup", "user": ' + bad + b', "password": "xxxxxxxxx"}')
        assert await c.closed(3) == 1007, bad


async def test_invalid_utf8_split_across_fragments_closes_1007(server, login):
    a = await login(server)
    a.send_frame(WSMsgType.TEXT, b'{"id": 1, "op": "convs", "x": "\xc3', fin=False)
    a.send_frame(WSMsgType.CONTINUATION, b'(" }', fin=True)     # \xc3 followed by '(' is invalid
    assert await a.closed(3) == 1007


async def test_oversize_frame_closes_1009(server, login):
    a = await login(server)
    big = b'{"id": 1, "op": "convs", "pad": "' + b"x" * 70_000 + b'"}'
    a.send_text(big)
    assert await a.closed(3) == 1009


async def test_oversize_reassembled_message_closes_1009(server, login):
    a = await login(server)
    a.send_frame(WSMsgType.TEXT, b'{"id": 1, "op": "convs", "pad": "', fin=False)
    for _ in range(4):                      # 4 x 20000 > 64 KiB; each frame is small
        a.send_frame(WSMsgType.CONTINUATION, b"y" * 20_000, fin=False)
    a.send_frame(WSMsgType.CONTINUATION, b'"}', fin=True)
    assert await a.closed(3) == 1009


async def test_fragmented_message_reassembled(server, login):
    a = await login(server)
    b = await login(server)
    body = "fragmented \u00e9\u4e16\U0001F600 body " + "z" * 3000
    data = orjson.dumps({"id": 4242, "op": "send", "to": b.user, "body": body, "cid": "frag-1"})
    # split inside multi-byte characters: after the first byte of "\u00e9" and
    # in the middle of the 4-byte emoji
    e_pos = data.index("\u00e9".encode()) + 1
    emoji_pos = data.index("\U0001F600".encode()) + 2
    a.send_fragments(data, [10, e_pos, emoji_pos, emoji_pos + 1, len(data) - 3])
    r = await _reply_with_id(a, 4242)
    assert "ok" in r, r
    ev = await b.event("msg")
    assert ev["body"] == body and ev["cid"] == "frag-1" and ev["from"] == a.user


async def test_fragmented_with_ping_in_between(server, login):
    a = await login(server)
    data = orjson.dumps({"id": 777, "op": "convs"})
    a.send_frame(WSMsgType.TEXT, data[:5], fin=False)
    a.ping(b"mid")
    a.send_frame(WSMsgType.CONTINUATION, data[5:], fin=True)
    r = await _reply_with_id(a, 777)
    assert r["ok"]["convs"] == []

    def got_pong():
        return True if b"mid" in a.pongs else None
    await a._wait(got_pong, 3.0, "the pong")


async def test_two_fragmented_messages_in_a_row(server, login):
    a = await login(server)
    for rid in (801, 802):
        data = orjson.dumps({"id": rid, "op": "convs"})
        a.send_fragments(data, [1, 2, 3])
    r1 = await _reply_with_id(a, 801)
    r2 = await _reply_with_id(a, 802)
    assert "ok" in r1 and "ok" in r2


async def test_continuation_without_start_closes_1002(server, login):
    a = await login(server)
    a.send_frame(WSMsgType.CONTINUATION, b'{"id": 1}', fin=True)
    assert await a.closed(3) == 1002


async def test_new_text_inside_fragmented_message_closes_1002(server, login):
    a = await login(server)
    a.send_frame(WSMsgType.TEXT, b'{"id": 1, ', fin=False)
    a.send_frame(WSMsgType.TEXT, b'{"id": 2, "op": "convs"}', fin=True)
    assert await a.closed(3) == 1002


async def test_rsv_bit_closes_1002(server, login):
    a = await login(server)
    a.send_frame(WSMsgType.TEXT, orjson.dumps({"id": 1, "op": "convs"}), rsv1=True)
    assert await a.closed(3) == 1002


# ----------------------------------------------------------------------------- CLOSE
async def test_client_close_is_answered_and_released(server, login):
    a = await login(server)
    a.auto_disconnect_on_close = False         # let the server end the TCP connection
    a.transport.send_close(WSCloseCode.OK, b"bye")
    assert await a.close_frame(3) == 1000
    await a.closed(3)                          # the server released the connection
    assert a.disconnected


async def test_client_close_code_echoed(server, connect):
    c = await connect(server)
    c.auto_disconnect_on_close = False
    c.transport.send_close(WSCloseCode.GOING_AWAY)
    assert await c.close_frame(3) == 1001
    await c.closed(3)


async def test_close_releases_connection_for_delivery(server, login):
    """After a device's connection closed, messages go to the backlog instead."""
    a = await login(server)
    b = await login(server, device="x")
    b.auto_disconnect_on_close = False
    b.transport.send_close(WSCloseCode.OK)
    await b.closed(3)
    await a.send_msg("while away", to=b.user)
    c = await login(server, b.user, device="x", signup=False)
    assert [m["body"] for m in c.backlog_msgs] == ["while away"]


# ----------------------------------------------------------------------------- unfinished fragments
_START = b'{"id": 5, "op": "convs", "pad": "'


async def _processed(c, tag: bytes):
    """The server has read everything c sent before (a PONG answers in order)."""
    c.ping(tag)
    await c._wait(lambda: True if tag in c.pongs else None, 3.0, "the pong")


async def test_unfinished_fragmented_message_closed_after_the_fragment_timeout(make_server, connect, login):
    """A client that answers pings and keeps sending fragments cannot hold a message open."""
    srv = make_server("--fragment-timeout", "0.6", "--ping-interval", "0.1")
    a = await connect(srv, auto_pong=False)
    a.manual_pong = True
    name = uname("frag")
    await a.signup(name)
    await a.login(name)
    await a.backlog()
    t0 = time.monotonic()
    a.send_frame(WSMsgType.TEXT, _START + b"x" * 1000, fin=False)
    while not a.disconnected and time.monotonic() - t0 < 4:
        a.send_frame(WSMsgType.CONTINUATION, b"y" * 100, fin=False)
        await asyncio.sleep(0.25)          # silent long enough to be pinged in between
    assert await a.closed(1) == 1008, a.close_reason
    assert 0.6 <= time.monotonic() - t0 <= 3.0
    assert a.pings >= 1                    # it was pinged and answered all along
    # a fragmented message finished in time is served as ever
    b = await login(srv)
    b.send_frame(WSMsgType.TEXT, _START, fin=False)
    await asyncio.sleep(0.3)
    b.send_frame(WSMsgType.CONTINUATION, b'"}', fin=True)
    assert "ok" in await _reply_with_id(b, 5)


async def test_unfinished_fragmented_messages_capped_across_connections(make_server, login):
    srv = make_server("--max-unfinished-bytes", "100000")
    a, b, c = await login(srv), await login(srv), await login(srv)
    a.send_frame(WSMsgType.TEXT, _START + b"a" * 50_000, fin=False)
    await _processed(a, b"a")
    # 50 000 + 60 000 held would pass the cap: that connection is refused, not a
    b.send_frame(WSMsgType.TEXT, _START + b"b" * 60_000, fin=False)
    assert await b.closed(3) == 1013, b.close_reason
    a.send_frame(WSMsgType.CONTINUATION, b'"}', fin=True)
    assert "ok" in await _reply_with_id(a, 5)
    # a's finished message no longer counts: c may hold 60 000, and once c is closed
    # while holding them they no longer count either
    c.send_frame(WSMsgType.TEXT, _START + b"c" * 60_000, fin=False)
    await _processed(c, b"c")
    await c.close()
    d = await login(srv)
    d.send_frame(WSMsgType.TEXT, _START + b"d" * 30_000, fin=False)
    d.send_frame(WSMsgType.CONTINUATION, b"d" * 30_000 + b'"}', fin=True)
    assert "ok" in await _reply_with_id(d, 5)
