"""Fuzzing the delivery promise with a Hypothesis state machine against a real server
subprocess over real sockets.

Three users with two devices each, their direct conversations and one group. Rules:
send, a burst of sends left unanswered, ack, disconnect (clean or abrupt), reconnect,
restart (SIGTERM or kill -9, then every device comes back and resends its unanswered
sends with the same cid), group add/remove/leave, read. After every step each connected
device is checked against the model, which is the promise itself:

- every acknowledged message is on every device of every recipient, once after dropping
  duplicates by (conv, seq), with the body and cid it was sent with (nothing lost, nothing
  stored twice);
- each conversation's messages arrive in seq order, seqs run 1, 2, 3... with no gap, and a
  device's inbox positions run 1..N with no gap;
- nothing (message, read or delivery receipt) reaches a user who is not a member.

`make test` runs a few short examples; `make fuzz` many long ones
(CHATSRV_FUZZ_EXAMPLES, CHATSRV_FUZZ_STEPS).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
import uvloop
from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test

from harness.server import ServerProc
from harness.client import PASSWORD, Client, ConnectionLost, dconv

EXAMPLES = int(os.environ.get("CHATSRV_FUZZ_EXAMPLES", "3"))
STEPS = int(os.environ.get("CHATSRV_FUZZ_STEPS", "25"))
# shrinking restarts the server for every attempt: minutes; on demand only
SHRINK = os.environ.get("CHATSRV_FUZZ_SHRINK") == "1"
ARGS = ["--rate", "1000000", "--burst", "1000000", "--login-failures", "1000", "--close-timeout", "0.5"]
STEP_TIMEOUT = 20.0
N_USERS, N_DEVICES = 3, 2
STATS = collections.Counter()     # over all examples: steps by rule, frames checked, duplicates dropped


@dataclass
class Msg:
    recipients: frozenset
    cid: Optional[str] = None          # None for a system message
    body: Optional[str] = None


@dataclass
class Device:
    user: str
    name: str
    token: Optional[str] = None
    client: Optional[Client] = None
    inbox: dict = field(default_factory=dict)     # inbox position -> (conv, seq)
    seen: dict = field(default_factory=dict)      # (conv, seq) -> inbox position
    last_seq: dict = field(default_factory=dict)  # conv -> highest seq seen, for the order check
    acked: int = 0
    pending: list = field(default_factory=list)   # (cid, conv, body, future) sent, no reply yet
    sends: dict = field(default_factory=dict)     # request id -> (cid, conv, body)
    # this device's connections, oldest first, with how many of their frames were processed:
    # frames are processed in the order they arrived, replies and events alike
    streams: list = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.user}/{self.name}"


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.loop = uvloop.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="chatsrv-fuzz-"))
        self.srv = ServerProc(self.tmp / "data", ARGS, log_path=self.tmp / "server.log")
        tag = uuid.uuid4().hex[:5]
        self.users = [f"fz{i}_{tag}" for i in range(N_USERS)]
        self.devices = [Device(u, f"d{j}") for u in self.users for j in range(N_DEVICES)]
        self.members: dict[str, list] = {}          # conv -> members in join order
        self.group: Optional[str] = None
        self.owner: Optional[str] = None
        self.msgs: dict[tuple, Msg] = {}             # (conv, seq) -> the committed message
        self.cids: dict[str, tuple] = {}             # cid -> (conv, seq)
        self.last: dict[str, int] = {}               # conv -> last committed seq
        self.cid_n = itertools.count(1)

    # ------------------------------------------------------------------ plumbing
    def run(self, coro):
        STATS[coro.__qualname__.split(".")[1]] += 1
        return self.loop.run_until_complete(asyncio.wait_for(coro, STEP_TIMEOUT))

    def teardown(self):
        try:
            for d in self.devices:
                if d.client is not None:
                    self.loop.run_until_complete(d.client.close())
            if self.srv.alive:
                self.srv.stop()
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def connected(self) -> list[Device]:
        return [d for d in self.devices if d.client is not None]

    def disconnected(self) -> list[Device]:
        return [d for d in self.devices if d.client is None]

    def _sendable(self, d: Device) -> list[str]:
        return sorted(c for c, m in self.members.items() if d.user in m)

    def all_convs(self) -> list[str]:
        return sorted(self.members)

    def direct(self, a: str, b: str) -> str:
        conv = dconv(a, b)
        self.members.setdefault(conv, sorted([a, b]))
        return conv

    def commit(self, conv: str, seq: int, msg: Msg) -> None:
        """The server reports (conv, seq) committed. Replies of several devices' bursts are
        read one device after the other, so seqs may come out of order here; that they
        run 1..last with no gap is checked once every send is answered (the invariant)."""
        key = (conv, seq)
        if key in self.msgs:
            known = self.msgs[key]
            assert (known.cid, known.body) == (msg.cid, msg.body), f"{key} reported for two messages"
            return
        self.msgs[key] = msg
        self.last[conv] = max(seq, self.last.get(conv, 0))
        if msg.cid is not None:
            self.cids[msg.cid] = key

    def expected(self, user: str) -> set:
        return {k for k, m in self.msgs.items() if user in m.recipients}

    # ------------------------------------------------------------------ receiving
    def record(self, d: Device, ev: dict) -> None:
        name = ev.get("ev")
        if name == "msg":
            key = (ev["conv"], ev["seq"])
            m = self.msgs.get(key)
            assert m is not None, f"{d.key} got {key}, which was never committed: {ev}"
            assert d.user in m.recipients, f"{d.key} got {key} but is not a recipient: {ev}"
            assert ev.get("cid") == m.cid and ev.get("body") == m.body, f"{d.key}: {key} is {ev}, sent as {m}"
            self.store(d, key, ev["inbox"])
        elif name in ("read", "delivered", "typing"):
            conv = ev.get("conv")
            assert d.user in self.members.get(conv, ()), f"{d.key} is not a member of {conv} but got {ev}"
        elif name == "synced":
            head = ev["inbox"]
            assert all(p in d.inbox for p in range(1, head + 1)), \
                f"{d.key}: synced {head} but positions {sorted(set(range(1, head + 1)) - set(d.inbox))} missing"
        else:
            raise AssertionError(f"{d.key}: unexpected event {ev}")

    def store(self, d: Device, key: tuple, pos: int) -> None:
        """Rule 1 of the client: drop what is already stored under (conv, seq)."""
        STATS["deliveries checked"] += 1
        if key in d.seen:
            assert d.seen[key] == pos, f"{d.key}: {key} at inbox {pos}, earlier at {d.seen[key]}"
            STATS["duplicates dropped"] += 1
            return
        assert pos not in d.inbox, f"{d.key}: inbox {pos} holds {d.inbox[pos]} and now {key}"
        conv, seq = key
        assert seq > d.last_seq.get(conv, 0), f"{d.key}: {conv} seq {seq} after {d.last_seq.get(conv)} (reordered)"
        d.last_seq[conv] = seq
        d.seen[key] = pos
        d.inbox[pos] = key

    def drain(self, d: Device) -> None:
        """Processes every frame received so far, in order; the model must know every
        message committed by then (no send unanswered)."""
        for stream in d.streams:
            c, pos = stream
            for f in c.frames[pos:]:
                if "ev" in f:
                    self.record(d, f)
                elif "ok" in f and f.get("id") in d.sends:
                    conv = d.sends[f["id"]][1]
                    self.store(d, (conv, f["ok"]["seq"]), f["ok"]["inbox"])
            stream[1] = len(c.frames)
        d.streams = [s for s in d.streams if s[0] is d.client]

    async def barrier(self, d: Device) -> None:
        """A request's reply comes after every event queued before it on the connection."""
        await d.client.ok("ack", upto=d.acked)
        self.drain(d)

    # ------------------------------------------------------------------ connections
    async def _connect(self, d: Device) -> None:
        """login the first time, auth with the token after; waits for the backlog."""
        c = await Client.connect(self.srv.url)
        if d.token is None:
            await c.login(d.user, PASSWORD, d.name)
            d.token = c.token
        else:
            await c.auth(d.token)
        d.client = c
        d.streams.append([c, 0])
        await c.until("synced")

    def _start_send(self, d: Device, conv: str, body: str, cid: str) -> asyncio.Future:
        rid = f"s{cid}-{len(d.sends)}"
        d.sends[rid] = (cid, conv, body)
        if conv.startswith("d:"):       # `to` opens a direct conversation on its first message
            other = next(u for u in self.members[conv] if u != d.user)
            return d.client.start("send", rid=rid, to=other, body=body, cid=cid)
        return d.client.start("send", rid=rid, conv=conv, body=body, cid=cid)

    async def _resend(self, d: Device) -> None:
        """Rule 5: unanswered sends go again with the same cid until they get ok."""
        pending, d.pending = d.pending, []
        for cid, conv, body, _ in pending:
            r = await self._start_send(d, conv, body, cid)
            assert "ok" in r, r
            self.sent(r["ok"], conv, cid, body)

    def sent(self, ok: dict, conv: str, cid: str, body: str) -> None:
        assert ok["conv"] == conv, ok
        if cid in self.cids:
            assert self.cids[cid] == (conv, ok["seq"]), f"cid {cid} stored twice: {self.cids[cid]} and {ok}"
        self.commit(conv, ok["seq"], Msg(frozenset(self.members[conv]), cid, body))

    async def _settle(self) -> None:
        """Waits for every unanswered send of connected devices (no fault is coming)."""
        for d in self.connected():
            pending, d.pending = d.pending, []
            for cid, conv, body, fut in pending:
                r = await fut
                assert "ok" in r, r
                self.sent(r["ok"], conv, cid, body)

    def _lost_connection(self, d: Device) -> None:
        """The connection is gone: sends answered before it went are committed, the
        others stay pending (to be resent)."""
        still = []
        for cid, conv, body, fut in d.pending:
            r = fut.exception() if fut.done() else ConnectionLost()
            if r is None and "ok" in fut.result():
                self.sent(fut.result()["ok"], conv, cid, body)
            else:
                still.append((cid, conv, body, fut))
        d.pending = still
        d.client = None

    # ------------------------------------------------------------------ rules
    @initialize()
    def start(self):
        self.srv.start()

        async def go():
            c = await Client.connect(self.srv.url)
            for u in self.users:
                await c.signup(u)
            await c.close()
            for d in self.devices:        # every device logs in before any message: cursors at 0
                await self._connect(d)
            a = self.devices[0]
            ok = await a.client.ok("group_create", name="fuzz", members=[self.users[1]])
            self.group, self.owner = ok["conv"], a.user
            self.members[self.group] = [self.users[0], self.users[1]]
            self.commit(self.group, 1, Msg(frozenset(self.members[self.group])))
            for i, u in enumerate(self.users):
                for v in self.users[i + 1:]:
                    self.direct(u, v)
            for d in self.devices:
                await self.barrier(d)
        self.run(go())

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), bodies=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3))
    def send(self, data, bodies):
        """Sends awaited one by one; to a group the sender is not in: forbidden."""
        d = data.draw(st.sampled_from(self.connected()), label="device")
        convs = [data.draw(st.sampled_from(self.all_convs()), label="conv") for _ in bodies]

        async def go():
            await self._settle()
            for conv, body in zip(convs, bodies):
                cid = f"c{next(self.cid_n)}"
                if d.user not in self.members[conv]:
                    assert await d.client.err("send", conv=conv, body=body, cid=cid) == "forbidden"
                    continue
                r = await self._start_send(d, conv, body, cid)
                assert "ok" in r, r
                self.sent(r["ok"], conv, cid, body)
        self.run(go())

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), n=st.integers(1, 8))
    def burst(self, data, n):
        """Sends left unanswered: the next rule settles them, unless it is a restart."""
        d = data.draw(st.sampled_from(self.connected()), label="device")
        todo = [(data.draw(st.sampled_from(self._sendable(d)), label="conv"), f"c{next(self.cid_n)}")
                for _ in range(n)]

        async def go():
            for conv, cid in todo:
                body = f"burst {cid}"
                d.pending.append((cid, conv, body, self._start_send(d, conv, body, cid)))
        self.run(go())

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), frac=st.floats(0, 1))
    def ack(self, data, frac):
        """Rule 2 of the client: ack at most the highest contiguous stored position."""
        d = data.draw(st.sampled_from(self.connected()), label="device")

        async def go():
            await self._settle()
            await self.barrier(d)
            contiguous = 0
            while contiguous + 1 in d.inbox:
                contiguous += 1
            upto = max(d.acked, int(contiguous * frac))
            await d.client.ok("ack", upto=upto)
            d.acked = upto
        self.run(go())

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), abrupt=st.booleans())
    def disconnect(self, data, abrupt):
        d = data.draw(st.sampled_from(self.connected()), label="device")

        async def go():
            await self._settle()
            await self.barrier(d)
            c = d.client
            if abrupt:
                c.transport.disconnect()
                await c.transport.wait_disconnected()
            else:
                await c.close()
            self._lost_connection(d)
            self.drain(d)
        self.run(go())

    @precondition(lambda self: self.disconnected())
    @rule(data=st.data())
    def reconnect(self, data):
        d = data.draw(st.sampled_from(self.disconnected()), label="device")

        async def go():
            await self._settle()
            await self._connect(d)
            await self._resend(d)
            await self.barrier(d)
        self.run(go())

    @rule(data=st.data(), kill=st.booleans(), burst=st.integers(0, 6),
          delay=st.sampled_from([0.0, 0.002, 0.01, 0.05]))
    def restart(self, data, kill, burst, delay):
        """kill -9 (or SIGTERM), often in the middle of a burst of sends; every device comes
        back and resends what was not answered."""
        bd = data.draw(st.sampled_from(self.connected()), label="bursting") if burst and self.connected() else None
        todo = [(data.draw(st.sampled_from(self._sendable(bd)), label="conv"), f"c{next(self.cid_n)}")
                for _ in range(burst)] if bd is not None else []

        async def go():
            for conv, cid in todo:
                body = f"burst {cid}"
                bd.pending.append((cid, conv, body, self._start_send(bd, conv, body, cid)))
            await asyncio.sleep(delay)
            if kill:
                self.srv.kill9()
            else:
                await self.loop.run_in_executor(None, self.srv.stop)
            for d in self.connected():
                await d.client.closed(5)
                self._lost_connection(d)
            await self.loop.run_in_executor(None, lambda: self.srv.start(self.srv.port))
            for d in self.devices:
                await self._connect(d)
            for d in self.devices:
                await self._resend(d)
            for d in self.devices:       # now that the model knows what the crash left committed
                await self.barrier(d)
        self.run(go())

    def _actor(self, data, members_only: bool = False) -> Device:
        pool = self.connected()
        if members_only:
            pool = [d for d in pool if d.user in self.members[self.group]] or pool
        return data.draw(st.sampled_from(pool), label="actor")

    async def _group_op(self, d: Device, op: str, expect: Optional[str], recipients, **args) -> None:
        """A group op; on success its system message is the conversation's next seq."""
        if expect is not None:
            assert await d.client.err(op, conv=self.group, **args) == expect
            return
        await d.client.ok(op, conv=self.group, **args)
        if recipients is not None:
            self.commit(self.group, self.last[self.group] + 1, Msg(frozenset(recipients)))

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), who_i=st.integers(0, N_USERS - 1))
    def group_add(self, data, who_i):
        d, who = self._actor(data), self.users[who_i]
        members = self.members[self.group]

        async def go():
            await self._settle()
            if d.user not in members:
                await self._group_op(d, "group_add", "forbidden", None, users=[who])
            elif who in members:
                await self._group_op(d, "group_add", None, None, users=[who])
            else:
                members.append(who)
                await self._group_op(d, "group_add", None, members, users=[who])
        self.run(go())

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), who_i=st.integers(0, N_USERS - 1))
    def group_remove(self, data, who_i):
        d, who = self._actor(data, members_only=True), self.users[who_i]
        members = self.members[self.group]

        async def go():
            await self._settle()
            if d.user not in members or d.user != self.owner:
                await self._group_op(d, "group_remove", "forbidden", None, user=who)
            elif who not in members:
                await self._group_op(d, "group_remove", "not_found", None, user=who)
            else:
                before = list(members)
                self._depart(who)
                await self._group_op(d, "group_remove", None, before, user=who)
        self.run(go())

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), last_too=st.integers(0, 4))
    def group_leave(self, data, last_too):
        d = self._actor(data, members_only=True)
        members = self.members[self.group]
        if members == [d.user] and last_too:
            return              # the last member leaves rarely: an empty group ends the group's story

        async def go():
            await self._settle()
            if d.user not in members:
                await self._group_op(d, "group_leave", "forbidden", None)
            else:
                before = list(members)
                self._depart(d.user)
                await self._group_op(d, "group_leave", None, before)
        self.run(go())

    def _depart(self, user: str) -> None:
        members = self.members[self.group]
        members.remove(user)
        if user == self.owner:          # the longest-standing remaining member takes over
            self.owner = members[0] if members else None

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), frac=st.floats(0, 1))
    def read(self, data, frac):
        d = data.draw(st.sampled_from(self.connected()), label="device")
        conv = data.draw(st.sampled_from(self.all_convs()), label="conv")

        async def go():
            await self._settle()
            seq = int(self.last.get(conv, 0) * frac)
            # a direct conversation exists from its first message on
            if d.user not in self.members[conv] or conv not in self.last:
                assert await d.client.err("read", conv=conv, seq=seq) == "forbidden"
            else:
                await d.client.ok("read", conv=conv, seq=seq)
        self.run(go())

    # ------------------------------------------------------------------ the promise
    @invariant()
    def every_connected_device_has_exactly_its_messages(self):
        if not self.srv.alive or not self.connected() or any(d.pending for d in self.devices):
            return

        async def go():
            for d in self.connected():
                await self.barrier(d)
        self.run(go())
        for conv, last in self.last.items():
            assert {s for (c, s) in self.msgs if c == conv} == set(range(1, last + 1)), conv
        for d in self.connected():
            want = self.expected(d.user)
            got = set(d.seen)
            assert not want - got, f"{d.key} lost {sorted(want - got)}"
            assert not got - want, f"{d.key} got unexpected {sorted(got - want)}"
            assert sorted(d.inbox) == list(range(1, len(want) + 1)), f"{d.key}: inbox has gaps: {sorted(d.inbox)}"


@pytest.mark.timeout(max(120, EXAMPLES * STEPS * 4))
def test_delivery_state_machine():
    STATS.clear()
    run_state_machine_as_test(DeliveryMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), print_blob=True,
        phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if SHRINK else [])))
    print(f"fuzz: {EXAMPLES} examples of up to {STEPS} steps:", dict(sorted(STATS.items())))
