"""chatsrv.core Router without sockets: fan-out of a Delivery to live connections at each
member's inbox position, the membership it keeps, events to users and watchers, and the
closing of a connection too slow to read."""
from chatsrv.core import Delivery, Router
from corekit import Wire, close_code, texts

REC = b'"conv":"g:x","seq":5,"from":"amy","ts":1,"body":"hi"}'


def wires(loop, router, *users, live=True):
    return [Wire(loop, router=router).login(u, live=live) for u in users]


def test_a_delivery_reaches_every_live_connection_at_its_members_position(loop):
    r = Router(1 << 20, loop)
    amy, bob, bob2, cat = wires(loop, r, "amy", "bob", "bob", "cat")
    sent = r.deliver(Delivery("g:x", REC, ["amy", "bob", "dan"], [4, 9, 2], origin=amy.conn))
    assert sent == 2                                        # bob's two devices; amy sent it, dan is offline
    for w in (bob, bob2):
        (ev,) = texts(w.out())
        assert ev == {"ev": "msg", "inbox": 9, "conv": "g:x", "seq": 5, "from": "amy", "ts": 1, "body": "hi"}
        assert w.conn.last_sent == 9
    assert amy.out() == b"" and cat.out() == b""
    assert r.members["g:x"] == ["amy", "bob", "dan"]
    assert (r.n_messages, r.n_delivered) == (1, 2)


def test_replaying_connections_and_positions_already_sent_are_skipped(loop):
    r = Router(1 << 20, loop)
    (syncing,) = wires(loop, r, "bob", live=False)
    (ahead,) = wires(loop, r, "bob")
    ahead.conn.last_sent = 9                                # replayed up to 9 already
    assert r.deliver(Delivery("g:x", REC, ["bob"], [9])) == 0
    assert syncing.out() == b"" and ahead.out() == b""


def test_members_after_a_group_change_are_kept_for_the_fast_path(loop):
    r = Router(1 << 20, loop)
    wires(loop, r, "amy")
    r.deliver(Delivery("g:x", REC, ["amy", "bob"], [1, 1], members_after=["amy"]))
    assert r.members["g:x"] == ["amy"]


def test_a_paused_connection_over_the_write_limit_is_closed_as_too_slow(loop):
    r = Router(100, loop)
    (slow,) = wires(loop, r, "bob")
    slow.conn.send(b"x" * 200)                              # queued, not flushed yet
    slow.conn.pause_writing()
    assert r.deliver(Delivery("g:x", REC, ["bob"], [1])) == 0
    assert r.n_slow_closed == 1
    assert close_code(slow.fake.received()) == 1013


def test_events_to_users_skip_the_excluded_connection_and_user(loop):
    r = Router(1 << 20, loop)
    amy, amy2, bob = wires(loop, r, "amy", "amy", "bob")
    assert r.broadcast(["amy", "bob"], b'{"ev":"typing"}', amy.conn) == 2
    assert amy.out() == b"" and texts(amy2.out()) == [{"ev": "typing"}] and texts(bob.out()) == [{"ev": "typing"}]
    assert r.broadcast(["amy", "bob"], b'{"ev":"read"}', None, "amy") == 1
    assert amy2.out() == b"" and texts(bob.out()) == [{"ev": "read"}]


def test_who_is_online_and_who_watches(loop):
    r = Router(1 << 20, loop)
    a1, a2 = wires(loop, r, "amy", "amy")
    (watcher,) = wires(loop, r, "bob")
    assert r.online("amy") and r.offline(["amy", "cat"]) == ["cat"]
    r.watch(watcher.conn, "amy")
    assert r.to_watchers("amy", b'{"ev":"presence"}') == 1
    assert texts(watcher.out()) == [{"ev": "presence"}]
    assert not r.detach(a1.conn) and r.detach(a2.conn)     # offline with the last connection
    assert not r.online("amy")
    r.unwatch(watcher.conn, "amy")
    assert not r.watched("amy")
