"""The domain without sockets: a Hub on the in-memory store and a real Writer, with
connections that record what they are sent and a local delivery that does in Python
what the core's router does in C (the interface the domain uses of it)."""
import asyncio

import orjson
import pytest

from chatsrv import proto as P
from chatsrv.auth import Passwords, Throttle, Tokens
from chatsrv.config import Config
from chatsrv.domain.hub import Hub
from chatsrv.store import Writer
from chatsrv.store.memory import MemoryStore


class FakeConn:
    """A connection as the domain sees it: the fields the hub sets, send() and close()."""

    def __init__(self, addr="127.0.0.1"):
        self.addr, self.forwarded = addr, None
        self.user = self.device = None
        self.authed = self.replaying = self.paused = self.closing = False
        self.last_sent = 0
        self.timer = self.resume_cb = self.extra = None
        self.frames = []
        self.closed_with = None

    def send(self, data):
        self.frames.append(orjson.loads(data))

    def close(self, code, reason):
        self.closing, self.closed_with = True, code

    def take(self):
        out, self.frames = self.frames, []
        return out

    def events(self, name):
        return [f for f in self.frames if f.get("ev") == name]


class LocalDelivery:
    """The router's interface as the domain uses it: the users' connections, the member
    table, fan-out (with the notifier told of each delivery, as the core does) and
    broadcasts, and the presence watchers."""

    def __init__(self, notifier):
        self.users, self.members, self.watchers = {}, {}, {}
        self.notifier = notifier

    def attach(self, c):
        self.users.setdefault(c.user, []).append(c)
        return len(self.users[c.user]) == 1

    def detach(self, c):
        conns = self.users.get(c.user, [])
        if c in conns:
            conns.remove(c)
            if not conns:
                del self.users[c.user]
                return True
        return False

    def conns_of(self, user):
        return self.users.get(user, [])

    def online(self, user):
        return user in self.users

    def offline(self, members):
        return [m for m in members if m not in self.users]

    def fanout(self, a, exclude, members_after):
        if a.dup:
            return
        self.members[a.conv] = a.members if members_after is None else members_after
        for m, pos in zip(a.members, a.positions):
            for c in self.users.get(m, []):
                if c is not exclude and not c.replaying and pos > c.last_sent:
                    c.send(P.msg_event(pos, a.record))
                    c.last_sent = pos
        self.notifier.on_delivery(a.members, a.record)

    def broadcast(self, users, data, exclude=None, skip_user=None):
        for u in users:
            if u != skip_user:
                for c in self.users.get(u, []):
                    if c is not exclude:
                        c.send(data)

    def watch(self, c, user):
        self.watchers.setdefault(user, []).append(c)

    def unwatch(self, c, user):
        if c in self.watchers.get(user, []):
            self.watchers[user].remove(c)
            if not self.watchers[user]:
                del self.watchers[user]

    def watched(self, user):
        return user in self.watchers

    def to_watchers(self, user, data):
        for c in self.watchers.get(user, []):
            c.send(data)


class RecordingNotifier:
    enabled = True
    public_key = "BPUBLICKEY"

    def __init__(self):
        self.deliveries, self.reads = [], []

    def on_delivery(self, members, record):
        self.deliveries.append((list(members), orjson.loads(b"{" + record)))

    def on_read(self, user, device, conv, seq):
        self.reads.append((user, device, conv, seq))


class SendDone:
    """What the core's SendDone does after a send's commit: fan-out, then the ok."""

    def __init__(self, conn, rid, hub):
        self.conn, self.rid, self.hub = conn, rid, hub

    def __call__(self, result, error):
        if error is not None:
            self.hub.write_failed(self.conn, self.rid, error)
            return
        self.hub.router.fanout(result, self.conn, None)
        self.conn.send(P.send_ok(self.rid, result.conv, result.seq, result.ts, result.inbox))


def replay_into(conn, positions, records):
    for pos, rec in zip(positions, records):
        conn.send(P.msg_event(pos, rec))
        conn.last_sent = pos


class Domain:
    def __init__(self, hub, writer, store, delivery, notifier):
        self.hub, self.writer, self.store, self.delivery, self.notifier = hub, writer, store, delivery, notifier

    async def req(self, conn, op, **fields):
        """Sends one request and returns its reply once every write it made has committed."""
        rid = len(conn.frames) + 1000
        self.hub.on_object(conn, {"id": rid, "op": op, **fields})
        for _ in range(2000):
            reply = next((f for f in conn.frames if f.get("id") == rid), None)
            if reply is not None:
                return reply
            await asyncio.sleep(0.002)
        raise AssertionError(f"no reply to {op}")

    async def ok(self, conn, op, **fields):
        r = await self.req(conn, op, **fields)
        assert "ok" in r, r
        return r["ok"]

    async def user(self, name, device="d1"):
        """A signed-up, logged-in connection of name."""
        conn = FakeConn()
        self.hub.on_open(conn)
        await self.ok(conn, "signup", user=name, password="password1")
        return await self.login(name, device, conn)

    async def login(self, name, device, conn=None):
        if conn is None:
            conn = FakeConn()
            self.hub.on_open(conn)
        await self.ok(conn, "login", user=name, password="password1", device=device)
        await self.settle()
        return conn

    async def settle(self):
        """Lets queued commits and their callbacks run."""
        for _ in range(5):
            await asyncio.sleep(0.005)
            while self.writer.queued():
                await asyncio.sleep(0.002)


class FakeTransport:
    class underlying_transport:
        @staticmethod
        def get_extra_info(name):
            return ("127.0.0.1", 5000)


@pytest.fixture
async def domain():
    loop = asyncio.get_running_loop()
    cfg = Config(max_group_members=4, presence_grace=0.01, typing_interval=60, auth_timeout=30)
    store = MemoryStore(P.message_record)
    writer = Writer(store, loop)
    writer.start()
    notifier = RecordingNotifier()
    delivery = LocalDelivery(notifier)
    passwords = Passwords(time_cost=1, memory_cost=8, parallelism=1)
    hub = Hub(cfg, store, writer, delivery, loop, notifier, passwords, Tokens(b"k" * 32),
              Throttle(cfg.login_failures, cfg.login_window), Throttle(cfg.login_failures * 4, cfg.login_window),
              SendDone, replay_into)
    FakeConn.transport = FakeTransport
    yield Domain(hub, writer, store, delivery, notifier)
    for c in list(hub.conns):
        if c.timer is not None:
            c.timer.cancel()
    writer.stop()
    passwords.close()
