"""kill -9 mid-burst, ten times, with groups and two devices per user: every device
resends its unanswered sends with the same cid; afterwards nothing acknowledged is
missing on any device of any member, nothing is stored twice, nothing arrives out of
order or to a non-member."""
import asyncio
import random
import time

import pytest

from fleet import Fleet

ROUNDS = 10
ARGS = ["--rate", "1000000", "--burst", "1000000", "--login-failures", "1000", "--close-timeout", "0.5"]


@pytest.mark.timeout(300)
async def test_kill9_mid_burst_rounds(chat_server, report):
    srv = chat_server(*ARGS)
    fleet = Fleet(srv.url, n_users=12, devices_per_user=2, group_size=5, n_groups=3,
                  window=8, budget=2000, stall=3.0)
    await fleet.start()
    t0 = time.monotonic()
    acked_at_kill, in_flight = [], 0
    for r in range(ROUNDS):
        await asyncio.sleep(random.uniform(0.3, 1.2))      # mid-burst: every device is sending
        acked_at_kill.append(len(fleet.acks))
        in_flight += sum(len(d.pending) for d in fleet.devices)
        srv.kill9()
        await asyncio.sleep(random.uniform(0.05, 0.3))
        srv.start(srv.port)
        # the next kill comes once the devices are back and sending
        deadline = time.monotonic() + 30
        while len(fleet.acks) < acked_at_kill[-1] + 100 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    t = await fleet.wind_down()
    elapsed = time.monotonic() - t0
    report("kill -9 mid-burst", f"{ROUNDS} rounds, {len(fleet.devices)} devices of {len(fleet.users)} users "
                                f"in {fleet.n_groups} groups and {len(fleet.users)} direct conversations, "
                                f"{in_flight} sends unanswered at the kills (resent by cid), {t.row()}, "
                                f"{t.received} deliveries checked, {t.reconnects} reconnects, {elapsed:.0f} s")
    # every kill hit a live burst: acks grew between any two kills, and sends were in flight
    assert all(a < b for a, b in zip(acked_at_kill, acked_at_kill[1:])) and acked_at_kill[0] > 0, acked_at_kill
    assert in_flight > 0
    assert (t.lost, t.duplicated, t.reordered, t.unexpected) == (0, 0, 0, 0), "\n".join(t.notes[:20])
