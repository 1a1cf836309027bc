"""chatsrv.bus without sockets: what leaves a commit (Sender.committed) is one Delivery on
the bus and one push notification; LocalBus hands it to this process's router; any Bus
written in Python (a cluster one later) receives the same typed Delivery."""
import pytest

from chatsrv.bus import Bus, LocalBus
from chatsrv.core import Delivery, Router, Sender
from chatsrv.store.message import Appended
from corekit import Wire, texts

REC = b'"conv":"g:x","seq":2,"from":"amy","ts":1,"body":"hi"}'


class Recording(Bus):
    def __init__(self):
        self.published, self.announced = [], []

    def publish(self, d):
        self.published.append(d)

    def presence(self, user, event):
        self.announced.append((user, event))


class Notifier:
    def __init__(self):
        self.calls = []

    def on_message(self, members, record):
        self.calls.append((members, record))


def sender(loop, bus, notifier=None):
    return Sender(Router(1 << 20, loop), bus, notifier, None, None, 1000)


def test_a_commit_leaves_as_one_delivery_and_one_notification(loop):
    bus, push = Recording(), Notifier()
    origin = object()
    sender(loop, bus, push).committed(Appended(False, "g:x", 2, 1, 7, REC, [7, 3], ["amy", "bob"]), origin,
                                      ["bob"])
    (d,) = bus.published
    assert (d.conv, d.record, d.members, d.positions, d.members_after) == ("g:x", REC, ["amy", "bob"], [7, 3],
                                                                          ["bob"])
    assert d.origin is origin
    assert push.calls == [(["amy", "bob"], REC)]


def test_a_deduplicated_send_publishes_nothing(loop):
    bus, push = Recording(), Notifier()
    sender(loop, bus, push).committed(Appended(True, "g:x", 2, 1, 7), None, None)
    assert bus.published == [] and push.calls == []


def test_the_local_bus_delivers_to_the_router_and_announces_presence_to_watchers(loop):
    r = Router(1 << 20, loop)
    bus = LocalBus(r)
    amy = Wire(loop, router=r).login("amy")
    bob = Wire(loop, router=r).login("bob")
    bus.publish(Delivery("g:x", REC, ["amy", "bob"], [7, 3], origin=amy.conn))
    assert amy.out() == b""
    assert [e["inbox"] for e in texts(bob.out())] == [3]
    r.watch(bob.conn, "amy")
    bus.presence("amy", b'{"ev":"presence","user":"amy","state":"online"}')
    assert texts(bob.out()) == [{"ev": "presence", "user": "amy", "state": "online"}]


def test_a_delivery_needs_a_position_for_every_member():
    with pytest.raises(ValueError):
        Delivery("g:x", REC, ["amy", "bob"], [1])
