"""proto.encode without sockets: the `msg` splice the router and the replay use gives
the same event as encoding it whole."""
import orjson
import pytest

from chatsrv import proto as P


@pytest.mark.parametrize("inbox", [0, 1, 9, 10, 12345, 2**63, 2**64 - 1])
def test_msg_event_is_the_record_with_the_inbox_spliced_in(inbox):
    rec = P.message_record("d:alice:bob", 3, "alice", 1700000000000, body="hé \"quoted\"", cid="c1")
    ev = P.msg_event(inbox, rec)
    assert ev == b'{"ev":"msg","inbox":' + str(inbox).encode() + b"," + rec
    assert orjson.loads(ev) == {"ev": "msg", "inbox": inbox, "conv": "d:alice:bob", "seq": 3, "from": "alice",
                                "ts": 1700000000000, "body": "hé \"quoted\"", "cid": "c1"}


def test_send_ok_reply():
    assert orjson.loads(P.send_ok("r1", "g:abc", 4, 1700000000001, 12)) == {
        "id": "r1", "ok": {"conv": "g:abc", "seq": 4, "ts": 1700000000001, "inbox": 12}}


def test_history_reply_wraps_records():
    recs = [P.message_record("g:x", s, "bob", 1, body=f"m{s}") for s in (1, 2)]
    assert orjson.loads(P.history_reply(5, recs))["ok"]["messages"] == [
        {"conv": "g:x", "seq": 1, "from": "bob", "ts": 1, "body": "m1"},
        {"conv": "g:x", "seq": 2, "from": "bob", "ts": 1, "body": "m2"}]
