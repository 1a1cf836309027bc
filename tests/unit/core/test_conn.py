"""chatsrv.core Conn without a socket server: framing, reassembly, the close handshake,
the request rate, the output buffer and the connection's states (corekit.py: picows'
real WSTransport over a fake transport)."""
import pytest
from picows import WSMsgType

from chatsrv.core import ConnState, Router
from corekit import Wire, close_code, close_frame, frame, frames, run_for, text_frame, texts


def test_a_text_message_reaches_the_hub_decoded_once(loop):
    w = Wire(loop)
    w.feed(text_frame('{"op":"convs","id":1}'))
    w.feed(text_frame("not json"))
    assert w.hub.objects == [{"op": "convs", "id": 1}]
    assert w.hub.texts == ["not json"]
    assert w.router.n_requests == 2


def test_fragments_are_reassembled_into_one_message(loop):
    w = Wire(loop)
    w.feed(text_frame('{"op":', fin=False))
    w.feed(frame(WSMsgType.CONTINUATION, b'"ack",', fin=False))
    w.feed(frame(WSMsgType.CONTINUATION, '"x":"é"}'.encode(), fin=True))
    assert w.hub.objects == [{"op": "ack", "x": "é"}]
    w.feed(text_frame('{"op":"again"}'))
    assert w.hub.objects[-1] == {"op": "again"}


@pytest.mark.parametrize("feed,code", [
    ([text_frame("x" * 17)], 1009),                                        # one frame over the cap
    ([text_frame("x" * 10, fin=False), frame(WSMsgType.CONTINUATION, b"y" * 10)], 1009),   # reassembled over
    ([frame(WSMsgType.BINARY, b"\x00")], 1003),
    ([frame(WSMsgType.CONTINUATION, b"x")], 1002),                          # nothing started
    ([text_frame("{", fin=False), text_frame("{}")], 1002),                 # new message inside one
    ([text_frame("{}", rsv1=True)], 1002),
    ([text_frame(b"\xff\xfe")], 1007),                                      # not UTF-8
])
def test_bad_frames_close_with_their_code(loop, feed, code):
    w = Wire(loop, max_frame=16)
    for f in feed:
        w.feed(f)
    assert close_code(w.out()) == code
    assert w.conn.state == ConnState.CLOSING and w.conn.closing
    assert w.hub.objects == [] and w.hub.texts == []


def test_frames_after_our_close_are_dropped_until_the_peers_close(loop):
    w = Wire(loop)
    w.conn.close(1008, "authentication timeout")
    assert close_code(w.out()) == 1008
    w.feed(text_frame('{"op":"convs"}'))
    assert w.hub.objects == []
    assert not w.fake.closed
    w.feed(close_frame(1008))           # the peer answers: now the socket closes
    assert w.fake.closed
    assert w.out() == b""               # and our CLOSE is not sent twice


def test_an_unanswered_close_closes_after_the_close_timeout_and_resets_after_the_drain_timeout(loop):
    w = Wire(loop, close_timeout=0.05, drain_timeout=0.1)
    w.conn.close(1001, "server shutting down")
    assert not w.fake.closed and not w.fake.aborted
    run_for(loop, 0.08)
    assert w.fake.closed and not w.fake.aborted      # what the transport holds may still reach the peer
    run_for(loop, 0.15)
    assert w.fake.aborted


def test_unfinished_messages_are_held_against_a_server_wide_cap(loop):
    r = Router(1 << 20, loop, 0.05, 0.05, 20)
    a = Wire(loop, router=r)
    b = Wire(loop, router=r)
    a.feed(text_frame("x" * 15, fin=False))
    assert r.frag_bytes == 15
    b.feed(text_frame("y" * 10, fin=False))          # 25 > 20: refused
    assert close_code(b.out()) == 1013 and r.n_frag_refused == 1
    a.feed(frame(WSMsgType.CONTINUATION, b"x" * 5, fin=True))
    assert r.frag_bytes == 0 and a.hub.objects == [] and a.hub.texts == ["x" * 20]


def test_a_fragmented_message_not_finished_in_time_closes_the_connection(loop):
    w = Wire(loop)
    w.feed(text_frame('{"op":', fin=False))
    assert w.router.keepalive([w.conn], 10.0, 10.0, 10.0) == 0 and close_code(w.out()) is None
    w.router.keepalive([w.conn], 10.0, 10.0, 0.0)
    assert close_code(w.out()) == 1008 and w.router.n_frag_expired == 1 and w.router.frag_bytes == 0


def test_a_slow_consumers_close_is_not_queued_behind_its_unread_frames(loop):
    w = Wire(loop)
    w.conn.send(b"x" * 500)
    w.conn.pause_writing()
    w.router.flush()
    assert w.fake.received() == b""                   # over the high mark: kept here, whole frames
    w.conn.close(1013, "too slow", True)
    assert [op for op, _, _ in frames(w.fake.received())] == [0x8]


@pytest.mark.parametrize("payload,answer", [
    (None, 1000), (1000, 1000), (4001, 4001), (1005, 1002), (1016, 1002), (2999, 1002)])
def test_the_peers_close_is_answered_then_the_socket_closed(loop, payload, answer):
    w = Wire(loop)
    w.conn.send(b'{"ev":"before"}')     # queued frames leave before the answer
    w.feed(close_frame(payload))
    data = w.fake.received()
    assert frames(data)[0] == (0x1, True, b'{"ev":"before"}')
    assert close_code(data) == answer
    assert w.fake.closed and w.conn.closing


def test_a_close_of_one_byte_or_bad_utf8_reason(loop):
    w = Wire(loop)
    w.feed(frame(WSMsgType.CLOSE, b"\x03"))
    assert close_code(w.out()) == 1002
    w = Wire(loop)
    w.feed(close_frame(1000, b"\xff"))
    assert close_code(w.out()) == 1007


def test_the_request_rate_refuses_then_closes(loop):
    w = Wire(loop, rate=0.0, burst=2.0, close_after=3)
    for i in range(4):
        w.feed(text_frame(f'{{"id":{i}}}'))
    assert [o["id"] for o in w.hub.objects] == [0, 1]
    assert w.hub.limited == ['{"id":2}', '{"id":3}']        # answered by the hub, not closed yet
    assert close_code(w.out()) is None
    w.feed(text_frame('{"id":4}'))                          # the third refused in a row
    assert close_code(w.out()) == 1008
    assert w.router.n_rate_limited == 3


def test_the_rate_refills_over_time(loop):
    w = Wire(loop, rate=50.0, burst=1.0, close_after=100)
    w.feed(text_frame("{}"))
    w.feed(text_frame("{}"))
    assert len(w.hub.objects) == 1 and len(w.hub.limited) == 1
    run_for(loop, 0.05)
    w.feed(text_frame("{}"))
    assert len(w.hub.objects) == 2


def test_frames_of_one_iteration_leave_in_one_write(loop):
    w = Wire(loop, buffered=1)              # the transport holds data: writes go through it
    w.conn.send(b'{"a":1}')
    w.conn.send(b"x" * 200)                 # 16-bit length
    w.conn.send(b"y" * 70000)               # 64-bit length
    w.router.flush()
    assert len(w.fake.writes) == 1
    assert frames(w.fake.received()) == [(0x1, True, b'{"a":1}'), (0x1, True, b"x" * 200),
                                          (0x1, True, b"y" * 70000)]


def test_with_nothing_queued_in_the_transport_frames_go_straight_to_the_socket(loop):
    w = Wire(loop, buffered=0)
    w.conn.send(b'{"ev":"x"}')
    w.router.flush()
    assert w.fake.writes == []
    assert texts(w.fake.received()) == [{"ev": "x"}]


def test_nothing_is_written_once_closing(loop):
    w = Wire(loop)
    w.conn.close(1000, "bye")
    w.out()
    w.conn.send(b'{"ev":"late"}')
    assert w.out() == b""


def test_states_from_open_to_closed(loop):
    w = Wire(loop)
    c = w.conn
    assert c.state == ConnState.OPEN and not c.authed and w.hub.opened == 1
    c.authenticate("alice", "phone", 7)
    assert c.state == ConnState.REPLAYING and c.authed and c.replaying
    assert (c.user, c.device, c.last_sent) == ("alice", "phone", 7)
    with pytest.raises(RuntimeError):
        c.authenticate("bob", "d", 0)
    c.synced()
    assert c.state == ConnState.LIVE and not c.replaying
    c.close(1000, "bye")
    assert c.state == ConnState.CLOSING and c.authed        # still alice's, so the close detaches it
    c.on_ws_disconnected(w.transport)
    assert c.state == ConnState.CLOSED and w.hub.closed == 1


def test_only_an_authenticated_connection_takes_the_send_fast_path(loop):
    # with no Sender wired every request goes to the hub, send included
    w = Wire(loop)
    w.feed(text_frame('{"op":"send","conv":"g:x","body":"hi","cid":"c1"}'))
    assert w.hub.objects == [{"op": "send", "conv": "g:x", "body": "hi", "cid": "c1"}]


def test_replay_queues_msg_events_at_their_positions(loop):
    w = Wire(loop)
    w.conn.authenticate("bob", "d1", 0)
    recs = [b'"conv":"g:x","seq":1,"from":"a","ts":1,"body":"one"}',
            b'"conv":"g:x","seq":2,"from":"a","ts":2,"body":"two"}']
    assert w.conn.replay([3, 10], recs) == 10
    assert w.conn.last_sent == 10
    assert [(e["inbox"], e["body"]) for e in texts(w.out())] == [(3, "one"), (10, "two")]


def test_keepalive_pings_a_silent_connection_and_drops_an_unanswering_one(loop):
    w = Wire(loop)
    conns = [w.conn]
    assert w.router.keepalive(conns, 10.0, 10.0, 10.0) == 0
    assert w.out() == b""
    assert w.router.keepalive(conns, 0.0, 10.0, 10.0) == 0  # silent past the interval: pinged
    assert [op for op, _, _ in frames(w.out())] == [0x9]
    assert w.router.keepalive(conns, 0.0, 0.0, 10.0) == 1   # no answer within the timeout: dropped
    assert w.fake.aborted and w.router.n_ping_dropped == 1


def test_a_pong_answers_the_ping(loop):
    w = Wire(loop)
    w.router.keepalive([w.conn], 0.0, 10.0, 10.0)
    w.feed(frame(WSMsgType.PONG, b""))
    assert w.conn.ping_sent == 0


def test_the_echo_path_returns_messages_through_the_same_frame_layer(loop):
    w = Wire(loop)
    w.conn.echo = True
    w.feed(frame(WSMsgType.BINARY, b"\x00\x01"))
    w.feed(text_frame("hé"))
    w.feed(frame(WSMsgType.BINARY, b"ab", fin=False))
    w.feed(frame(WSMsgType.CONTINUATION, b"cd"))
    assert frames(w.out()) == [(0x2, True, b"\x00\x01"), (0x1, True, "hé".encode()), (0x2, True, b"abcd")]
    assert w.hub.objects == [] and w.hub.texts == []


def test_a_close_with_reserved_bits_is_answered_1002_and_the_socket_closed(loop):
    w = Wire(loop)
    w.feed(frame(WSMsgType.CLOSE, b"\x03\xe8", rsv1=True))
    assert close_code(w.out()) == 1002 and w.fake.closed
