"""Devices that keep chatting through faults, as a careful client would (protocol §8.5),
and the tally of what they saw: lost, duplicated, reordered and unexpected messages.

Each `Device` is one (user, device) with its token. It connects (auth), takes its backlog,
resends every unanswered send with the same cid, then sends with a window of requests
in flight, storing every message once by (conv, seq) and acking the highest contiguous
inbox position it has stored. A connection that fails, or a reply that does not come
within `stall` seconds, makes it reconnect after a short random backoff (or after the
retry hint of a 1013 close). Membership is fixed: groups are made before the faults.
"""
from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import Optional

from harness.client import PASSWORD, Client, ConnectionLost, ReplyTimeout, dconv

RETRY_RE = re.compile(r"retry after (\d+) ms")


@dataclass
class Tally:
    acked: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    unexpected: int = 0
    reconnects: int = 0
    refused_1013: int = 0
    notes: list = field(default_factory=list)

    def row(self) -> str:
        return (f"acked {self.acked}, lost {self.lost}, duplicated {self.duplicated}, "
                f"reordered {self.reordered}, unexpected {self.unexpected}")


class Device:
    def __init__(self, fleet: "Fleet", user: str, name: str, convs: list, *, window: int = 4,
                 budget: int = 200, stall: float = 3.0):
        self.fleet, self.user, self.name, self.convs = fleet, user, name, convs
        self.window, self.budget, self.stall = window, budget, stall
        self.token: Optional[str] = None
        self.client: Optional[Client] = None
        self.pos = 0                         # frames of the current client processed
        self.inbox: dict = {}                # inbox position -> (conv, seq)
        self.seen: dict = {}                 # (conv, seq) -> (inbox position, cid)
        self.last_seq: dict = {}             # conv -> highest seq stored
        self.sends: dict = {}                # request id -> cid
        self.futs: list = []                 # reply futures of the current connection
        self.pending: dict = {}              # cid -> (conv, body), sent without ok yet
        self.acked_upto = 0
        self.sent_n = 0
        self.reconnects = 0
        self.refused = 0
        self.reordered = 0
        self.conflicts: list = []
        self.synced_at: Optional[float] = None
        self.head = 0                        # the inbox head of the last `synced`
        self.rid = 0

    @property
    def key(self) -> str:
        return f"{self.user}/{self.name}"

    # ------------------------------------------------------------------ receiving
    def drain(self) -> None:
        """Every frame received so far, in arrival order: events and our send replies."""
        c = self.client
        if c is None:
            return
        frames = c.frames
        while self.pos < len(frames):
            f = frames[self.pos]
            self.pos += 1
            if f.get("ev") == "msg":
                self.store((f["conv"], f["seq"]), f["inbox"], f.get("cid"), f.get("from"))
            elif "ok" in f and f.get("id") in self.sends:
                cid = self.sends.pop(f["id"])
                ok = f["ok"]
                self.fleet.ack(self, cid, (ok["conv"], ok["seq"]))
                self.pending.pop(cid, None)
                self.store((ok["conv"], ok["seq"]), ok["inbox"], cid, self.user)
            elif "err" in f and f.get("id") in self.sends:
                self.sends.pop(f["id"])          # e.g. unavailable: stays pending, resent later

    def store(self, key: tuple, pos: int, cid: Optional[str], sender: Optional[str]) -> None:
        if key in self.seen:
            if self.seen[key][0] != pos:
                self.conflicts.append(f"{self.key}: {key} at inbox {pos} and {self.seen[key][0]}")
            return
        if pos in self.inbox:
            self.conflicts.append(f"{self.key}: inbox {pos} holds {self.inbox[pos]} and {key}")
            return
        conv, seq = key
        if seq < self.last_seq.get(conv, 0):
            self.reordered += 1
        self.last_seq[conv] = max(seq, self.last_seq.get(conv, 0))
        self.seen[key] = (pos, cid)
        self.inbox[pos] = key

    def contiguous(self) -> int:
        n = self.acked_upto
        while n + 1 in self.inbox:
            n += 1
        return n

    # ------------------------------------------------------------------ connection
    async def login(self) -> None:
        c = await Client.connect(self.fleet.url)
        await c.login(self.user, PASSWORD, self.name)
        self.token = c.token
        self.client, self.pos = c, 0
        await c.until("synced", 10)
        self.drain()

    async def connect(self, timeout: float = 5.0) -> None:
        """auth with the token until it works; a 1013 close is retried after its hint."""
        while True:
            self.client = None
            try:
                c = await asyncio.wait_for(Client.connect(self.fleet.url, timeout=timeout), timeout)
                self.client, self.pos = c, 0
                r = await c.req("auth", token=self.token, timeout=timeout)
                if "ok" not in r:
                    raise ConnectionLost(f"auth refused: {r}")
                _, synced = await c.until("synced", timeout)
                self.drain()
                self.head = synced["inbox"]
                self.synced_at = time.monotonic()
                return
            except (ConnectionLost, ReplyTimeout, OSError, asyncio.TimeoutError, TimeoutError) as e:
                c = self.client
                hint = None
                if c is not None and c.close_code == 1013:
                    self.refused += 1
                    m = RETRY_RE.search(c.close_reason or "")
                    hint = int(m.group(1)) / 1000 if m else 1.0
                await self.drop()
                if self.fleet.stopping and self.fleet.hard_stop:
                    raise asyncio.CancelledError() from e
                # the hint plus jitter of the same size, so retries spread out
                await asyncio.sleep(hint * (1 + random.random()) if hint is not None
                                    else random.uniform(0.05, 0.4))

    async def drop(self) -> None:
        c, self.client = self.client, None
        self.sends.clear()
        for f in self.futs:                  # a lost connection fails them: nobody waits any more
            if f.done():
                f.cancelled() or f.exception()
            else:
                f.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.futs = []
        if c is not None:
            await c.close(0.5)

    def _send(self, cid: str, conv: str, body: str) -> asyncio.Future:
        self.rid += 1
        rid = f"{self.name}-{self.rid}"
        self.sends[rid] = cid
        if conv.startswith("d:"):
            other = next(u for u in conv[2:].split(":") if u != self.user)
            fut = self.client.start("send", rid=rid, to=other, body=body, cid=cid)
        else:
            fut = self.client.start("send", rid=rid, conv=conv, body=body, cid=cid)
        self.futs.append(fut)
        return fut

    async def _wait(self, futs: list) -> None:
        """Until one reply comes; no reply within `stall` means the server is stuck."""
        done, _ = await asyncio.wait(futs, timeout=self.stall, return_when=asyncio.FIRST_COMPLETED)
        self.drain()
        if not done:
            raise ReplyTimeout(f"{self.key}: no reply within {self.stall}s")
        for f in done:
            f.exception()                  # retrieved; ConnectionLost shows as disconnected below
        if self.client is None or self.client.disconnected:
            raise ConnectionLost(f"{self.key}: connection lost")

    async def _resend(self) -> None:
        futs = [self._send(cid, conv, body) for cid, (conv, body) in list(self.pending.items())]
        while futs:
            await self._wait(futs)
            futs = [f for f in futs if not f.done()]

    async def _ack(self) -> None:
        upto = self.contiguous()
        if upto > self.acked_upto:
            fut = self.client.start("ack", upto=upto)
            self.futs.append(fut)
            await self._wait([fut])
            self.acked_upto = upto

    async def session(self) -> None:
        """One connection's life: resend, then send within the budget while the fleet runs."""
        await self._resend()
        inflight: list = []
        while not self.fleet.stopping and (self.sent_n < self.budget or inflight):
            while len(inflight) < self.window and self.sent_n < self.budget and not self.fleet.stopping:
                self.sent_n += 1
                cid = f"{self.key}#{self.sent_n}"
                conv = random.choice(self.convs)
                body = f"m {cid}"
                self.pending[cid] = (conv, body)
                inflight.append(self._send(cid, conv, body))
            if inflight:
                await self._wait(inflight)
                inflight = [f for f in inflight if not f.done()]
            if random.random() < 0.2:
                await self._ack()
            await asyncio.sleep(random.uniform(0, self.fleet.pace))
        if inflight:
            await self._resend()

    async def run(self) -> None:
        while True:
            try:
                if self.client is None or self.client.disconnected:
                    await self.connect()
                await self.session()
                if self.fleet.stopping:
                    return
                await asyncio.sleep(0.05)
            except (ConnectionLost, ReplyTimeout, OSError, asyncio.TimeoutError, TimeoutError):
                self.reconnects += 1
                await self.drop()
                if self.fleet.stopping and self.fleet.hard_stop:
                    return
                await asyncio.sleep(random.uniform(0.05, 0.3))

    async def finish(self) -> None:
        """After the faults: every pending send resent until ok, then a fresh connection's
        backlog, so that everything the server holds for this device has been seen."""
        for _ in range(20):
            try:
                await self.drop()
                await self.connect()
                await self._resend()
                await self._ack()
                await self.drop()
                await self.connect()        # the backlog after the cursor, up to `synced`
                await self.drop()
                return
            except (ConnectionLost, ReplyTimeout, OSError, asyncio.TimeoutError, TimeoutError):
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.key} could not finish")


class Fleet:
    """Users, their devices, their conversations, and the server's acks to all of them."""

    def __init__(self, url: str, n_users: int, devices_per_user: int = 2, group_size: int = 4,
                 n_groups: int = 3, **device_kw):
        self.url = url
        self.tag = f"{random.randrange(36 ** 4):04x}"
        self.users = [f"ch{i}_{self.tag}" for i in range(n_users)]
        self.n_groups, self.group_size = n_groups, group_size
        self.devices_per_user = devices_per_user
        self.device_kw = device_kw
        self.members: dict = {}              # conv -> frozenset of members
        self.devices: list[Device] = []
        self.acks: dict = {}                 # cid -> (conv, seq) of its first ok
        self.duplicated = 0
        self.stopping = False
        self.hard_stop = False
        self.pace = 0.01

    def ack(self, dev: Device, cid: str, key: tuple) -> None:
        first = self.acks.setdefault(cid, key)
        if first != key:
            self.duplicated += 1             # the same cid stored twice, under two seqs

    async def setup(self) -> None:
        c = await Client.connect(self.url)
        for u in self.users:
            await c.signup(u)
        await c.login(self.users[0], PASSWORD, "setup")
        await c.until("synced")
        owner_convs: dict = {u: [] for u in self.users}
        for g in range(self.n_groups):
            # groups of consecutive users, overlapping, all with the first user as a member
            group = [self.users[(g * (self.group_size - 1) + i) % len(self.users)] for i in range(self.group_size)]
            group = list(dict.fromkeys([self.users[0], *group]))
            ok = await c.ok("group_create", name=f"g{g}", members=group[1:])
            self.members[ok["conv"]] = frozenset(group)
            for u in group:
                owner_convs[u].append(ok["conv"])
        await c.close()
        for i, u in enumerate(self.users):
            v = self.users[(i + 1) % len(self.users)]
            conv = dconv(u, v)
            self.members[conv] = frozenset([u, v])
            owner_convs[u].append(conv)
            owner_convs[v].append(conv)
        for u in self.users:
            for j in range(self.devices_per_user):
                self.devices.append(Device(self, u, f"d{j}", owner_convs[u], **self.device_kw))
        # logins one at a time: the server queues password hashes, and all cursors start at 0
        for d in self.devices:
            await d.login()
        # the setup device's view of the create messages is not needed: every device got them

    async def start(self) -> None:
        """Sign-ups and logins, then every device runs until `wind_down`."""
        await self.setup()
        self.tasks = [asyncio.create_task(d.run()) for d in self.devices]

    async def wind_down(self) -> Tally:
        """Stops sending, resends what is unanswered, takes every backlog, and counts."""
        self.stopping = True
        await asyncio.wait_for(asyncio.gather(*self.tasks), 60)
        for d in self.devices:
            await asyncio.wait_for(d.finish(), 60)
        return self.tally()

    def tally(self) -> Tally:
        t = Tally(acked=len(self.acks), duplicated=self.duplicated)
        by_cid: dict = {}
        for d in self.devices:
            t.reconnects += d.reconnects
            t.refused_1013 += d.refused
            t.reordered += d.reordered
            t.notes += d.conflicts
            t.unexpected += len(d.conflicts)
            want = {key for key in self.acks.values() if d.user in self.members[key[0]]}
            got = set()
            for key, (pos, cid) in d.seen.items():
                t.received += 1
                if cid is None:              # a system message: the group's creation
                    if key[0] not in self.members or d.user not in self.members[key[0]]:
                        t.unexpected += 1
                    continue
                got.add(key)
                by_cid.setdefault(cid, set()).add(key)
                if self.acks.get(cid) != key or d.user not in self.members[key[0]]:
                    t.unexpected += 1
            lost = want - got
            t.lost += len(lost)
            if lost:
                t.notes.append(f"{d.key} lost {sorted(lost)[:5]}")
            if sorted(d.inbox) != list(range(1, d.head + 1)):
                t.notes.append(f"{d.key}: inbox {len(d.inbox)} positions, not 1..{d.head}")
                t.lost += max(0, d.head - len(d.inbox))
        t.duplicated += sum(1 for keys in by_cid.values() if len(keys) > 1)
        return t
