"""A real filesystem that fills up under load (a tmpfs filled to the last byte, three times)
while users in groups and direct conversations, two devices each, keep sending. Sends are
answered `unavailable` while it is full and resent with the same cid, as a client does; once
room is made the same server process takes them. Every device then replays its whole
inbox: every acknowledged message once, in conversation order, nothing else."""
import asyncio
import itertools
import time

from harness.client import PASSWORD, Client, dconv
from harness.disk import SmallFilesystem
from harness.net import http_get
from harness.server import ServerProc

MiB = 1 << 20
USERS = 6
CYCLES = 3
RUN = 2.0              # seconds of sending in each state (room, full, room again)
BODY = 4000
WINDOW = 4             # sends in flight per sender


class Sender:
    """A user's first device sending to its conversations in turn, resending what was
    refused (or left unanswered) with the same cid until it is acknowledged."""

    def __init__(self, c: Client, convs, user):
        self.c, self.convs, self.user = c, convs, user
        self.todo = []               # (conv, cid) to (re)send
        self.acked = {}              # cid -> (conv, seq)
        self.refused = 0
        self.n = itertools.count()

    async def run(self, until: float, new: bool, deadline: float):
        """New sends until `until` (if new), and resends of refused ones, all answered by
        `deadline` at the latest."""
        loop = asyncio.get_running_loop()
        inflight = set()
        while loop.time() < deadline and (loop.time() < until or inflight or (not new and self.todo)):
            while len(inflight) < WINDOW:
                if self.todo:
                    conv, cid = self.todo.pop(0)
                elif new and loop.time() < until:
                    i = next(self.n)
                    conv, cid = self.convs[i % len(self.convs)], f"{self.user}-{i}"
                else:
                    break
                inflight.add(asyncio.ensure_future(self._one(conv, cid)))
            if not inflight:
                await asyncio.sleep(0.05)
                continue
            done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for f in done:
                f.result()       # a wrong answer fails the test here

    async def _one(self, conv, cid):
        r = await self.c.req("send", conv=conv, body=f"{cid} " + "x" * BODY, cid=cid, timeout=30)
        if "ok" in r:
            prev = self.acked.setdefault(cid, (conv, r["ok"]["seq"]))
            assert prev == (conv, r["ok"]["seq"]), f"cid {cid} acknowledged twice: {prev} and {r}"
        else:
            assert r["err"]["code"] == "unavailable", r
            self.refused += 1
            await asyncio.sleep(0.2)
            self.todo.append((conv, cid))


async def test_full_filesystem_under_load(tmp_path, report):
    with SmallFilesystem(tmp_path / "fs", 256 * MiB) as fs:     # room for the data itself
        srv = ServerProc(fs.path / "data", ["--rate", "100000", "--burst", "100000"],
                         log_path=tmp_path / "server.log").start()
        pid = srv.proc.pid
        try:
            names = [f"user{i}" for i in range(USERS)]
            admin = await Client.connect(srv.url)
            for n in names:
                await admin.signup(n)
            devices = {}
            for n in names:
                for d in ("phone", "laptop"):
                    c = await Client.connect(srv.url)
                    await c.login(n, PASSWORD, d)
                    await c.backlog()
                    devices[(n, d)] = c
            g1 = (await devices[("user0", "phone")].ok("group_create", name="g1", members=names[1:4]))["conv"]
            g2 = (await devices[("user3", "phone")].ok("group_create", name="g2", members=names[4:] + names[:1]))["conv"]
            members = {g1: set(names[:4]), g2: {"user3", "user4", "user5", "user0"}}
            convs_of = {n: [g for g, m in members.items() if n in m] for n in names}
            for a, b in (("user0", "user1"), ("user2", "user5"), ("user4", "user1")):
                d = dconv(a, b)
                members[d] = {a, b}
                convs_of[a].append(("to", b))
                convs_of[b].append(("to", a))
            senders = []
            for n in names:
                convs = [c if isinstance(c, str) else dconv(n, c[1]) for c in convs_of[n]]
                senders.append(Sender(devices[(n, "phone")], convs, n))
            # a direct conversation exists once someone sends to it: make each before the load
            for a, b in (("user0", "user1"), ("user2", "user5"), ("user4", "user1")):
                await devices[(a, "phone")].send_msg("hello", to=b, cid=f"hello-{a}-{b}")

            loop = asyncio.get_running_loop()
            full_refused, healthy_while_full = [], True
            for _ in range(CYCLES):
                t = loop.time()
                await asyncio.gather(*(s.run(t + RUN, True, t + RUN + 30) for s in senders))
                fs.fill()
                before = sum(s.refused for s in senders)
                t = loop.time()
                await asyncio.gather(*(s.run(t + RUN, True, t + RUN + 30) for s in senders))
                full_refused.append(sum(s.refused for s in senders) - before)
                healthy_while_full &= http_get(srv.port, "/healthz")[0] == 200
                fs.free()
            # everything refused is resent until acknowledged, on the same server
            t = loop.time()
            await asyncio.gather(*(s.run(t, False, t + 60) for s in senders))
            left = sum(len(s.todo) for s in senders)
            assert left == 0, f"{left} sends still refused 60 s after room was made"
            assert srv.proc.pid == pid and srv.alive, "the server restarted or died"

            acked = {}                                           # conv -> {seq: cid}
            for s in senders:
                for cid, (conv, seq) in s.acked.items():
                    acked.setdefault(conv, {})[seq] = cid
            lost = dup = reordered = unexpected = 0
            for (n, d), live in devices.items():
                fresh = await Client.connect(srv.url)
                await fresh.auth(live.token)
                msgs, _ = await fresh.backlog(timeout=60)
                await fresh.close()
                seen = {}
                for m in msgs:
                    if m.get("sys") is not None or m["cid"].startswith("hello-"):
                        continue
                    conv = m["conv"]
                    if acked.get(conv, {}).get(m["seq"]) != m["cid"] or n not in members[conv]:
                        unexpected += 1
                    elif (conv, m["seq"]) in seen:
                        dup += 1
                    elif seen and max((s for c, s in seen if c == conv), default=0) > m["seq"]:
                        reordered += 1
                    seen[(conv, m["seq"])] = True
                for conv, by_seq in acked.items():
                    if n in members[conv]:
                        lost += sum((conv, s) not in seen for s in by_seq)
            n_acked = sum(len(v) for v in acked.values())
            resent = sum(s.refused for s in senders)
            report("full filesystem",
                   f"{n_acked} acked to {len(devices)} devices over {CYCLES} fill/free cycles of a "
                   f"{fs.size // MiB} MiB tmpfs; refused (unavailable) while full: {full_refused}, all "
                   f"resent by cid and acknowledged once after room was made, same server process; "
                   f"/healthz up while full: {healthy_while_full}; lost {lost}, duplicated {dup}, "
                   f"reordered {reordered}, unexpected {unexpected}")
            assert all(full_refused), f"a full cycle refused nothing: {full_refused}"
            assert lost == dup == reordered == unexpected == 0
            assert healthy_while_full
        finally:
            srv.stop()
