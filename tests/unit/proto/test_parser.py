"""chatsrv.proto without sockets: parsing, validation and encoding."""
import orjson
import pytest

from chatsrv import proto as P

parser = P.Parser(max_body_bytes=16)


def parse(obj):
    return parser.parse(orjson.dumps(obj))


def error_of(text):
    with pytest.raises(P.ProtocolError) as e:
        parser.parse(text)
    return e.value.rid, e.value.code


def test_send_parses_to_typed_request():
    r = parse({"id": 7, "op": "send", "to": "bob", "body": "hi", "cid": "c1"})
    assert (r.rid, r.op, r.to, r.conv, r.body, r.cid) == (7, "send", "bob", None, "hi", "c1")
    assert r.needs_auth


@pytest.mark.parametrize("text,rid", [
    (b"not json", None),
    (b"[1,2]", None),
    (b'"str"', None),
    (b'{"id": [1], "op": "convs"}', None),
    (b'{"id": 3}', 3),
    (b'{"id": "x", "op": "fly"}', "x"),
    (b'{"id": 4, "op": 5}', 4),
])
def test_malformed_frames_are_bad_request_with_their_id(text, rid):
    assert error_of(text) == (rid, P.BAD_REQUEST)


@pytest.mark.parametrize("obj", [
    {"op": "signup", "user": "Al", "password": "password1"},          # name too short, upper case
    {"op": "signup", "user": "alice", "password": "short"},
    {"op": "signup", "user": "alice", "password": "x" * 257},
    {"op": "login", "user": "alice", "password": "password1", "device": "bad device"},
    {"op": "login", "user": "alice", "password": "password1"},
    {"op": "send", "to": "bob", "body": "", "cid": "c"},
    {"op": "send", "to": "bob", "body": 5, "cid": "c"},
    {"op": "send", "to": "bob", "body": "x", "cid": ""},
    {"op": "send", "to": "bob", "body": "x", "cid": "c" * 65},
    {"op": "send", "body": "x", "cid": "c"},
    {"op": "send", "to": "bob", "conv": "d:a:b", "body": "x", "cid": "c"},
    {"op": "ack", "upto": -1},
    {"op": "ack", "upto": "3"},
    {"op": "ack", "upto": True},
    {"op": "history", "conv": "c", "limit": 0},
    {"op": "history"},
])
def test_wrong_argument_shapes_are_bad_request(obj):
    obj["id"] = 9
    assert error_of(orjson.dumps(obj)) == (9, P.BAD_REQUEST)


def test_body_limit_counts_utf8_bytes():
    assert parse({"op": "send", "to": "bob", "body": "a" * 16, "cid": "c"}).body == "a" * 16
    # 6 characters, 18 bytes
    assert error_of(orjson.dumps({"id": 1, "op": "send", "to": "bob", "body": "é" * 6 + "aaaaaa",
                                  "cid": "c"})) == (1, P.TOO_LARGE)


def test_history_limit_is_capped_and_defaulted():
    assert parse({"op": "history", "conv": "c"}).limit == P.HISTORY_DEFAULT
    assert parse({"op": "history", "conv": "c", "limit": 10_000}).limit == P.HISTORY_MAX


def test_repr_never_shows_secrets():
    r = parse({"op": "login", "user": "alice", "password": "hunter2hunter2", "device": "d"})
    assert "hunter2" not in repr(r)


def test_replies_and_events():
    assert orjson.loads(P.ok(1, {"a": 1})) == {"id": 1, "ok": {"a": 1}}
    assert orjson.loads(P.err(None, P.FORBIDDEN, "no")) == {"id": None, "err": {"code": "forbidden", "msg": "no"}}
    assert orjson.loads(P.event("synced", inbox=3)) == {"ev": "synced", "inbox": 3}


def test_message_record_splices_into_event_and_history():
    rec = P.message_record("d:a:b", 4, "a", 123, body='he said "hi"', cid="c9")
    ev = orjson.loads(P.msg_event(17, rec))
    assert ev == {"ev": "msg", "inbox": 17, "conv": "d:a:b", "seq": 4, "from": "a", "ts": 123,
                  "body": 'he said "hi"', "cid": "c9"}
    h = orjson.loads(P.history_reply("q", [rec, rec]))
    assert h["id"] == "q" and len(h["ok"]["messages"]) == 2
    assert h["ok"]["messages"][0] == {k: v for k, v in ev.items() if k not in ("ev", "inbox")}
    assert orjson.loads(P.history_reply(1, [])) == {"id": 1, "ok": {"messages": []}}
