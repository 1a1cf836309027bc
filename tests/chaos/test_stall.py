"""SIGSTOP, then SIGCONT, of the server for longer than the ping timeout: clients give up
on the stuck connections and reconnect once it runs again; nothing acknowledged is lost."""
import asyncio
import signal
import time

import pytest

from fleet import Fleet

PING = 1.0
STALL = 3 * (PING + PING)
ARGS = ["--rate", "1000000", "--burst", "1000000", "--login-failures", "1000",
        "--ping-interval", str(PING), "--ping-timeout", str(PING), "--close-timeout", "0.5"]


@pytest.mark.timeout(240)
async def test_sigstop_longer_than_ping_timeout(chat_server, report):
    srv = chat_server(*ARGS)
    fleet = Fleet(srv.url, n_users=10, devices_per_user=2, group_size=4, n_groups=2,
                  window=4, budget=300, stall=2.0)
    await fleet.start()
    await asyncio.sleep(1.5)
    srv.proc.send_signal(signal.SIGSTOP)
    await asyncio.sleep(0.5)                 # replies already on their way
    before = len(fleet.acks)
    await asyncio.sleep(STALL - 0.5)
    during = len(fleet.acks)
    srv.proc.send_signal(signal.SIGCONT)
    t_cont = time.monotonic()
    # every device reconnected after the stall and got a reply again
    while min(d.synced_at or 0 for d in fleet.devices) < t_cont and time.monotonic() - t_cont < 30:
        await asyncio.sleep(0.1)
    recovered = time.monotonic() - t_cont
    await asyncio.sleep(1.0)
    t = await fleet.wind_down()
    report("SIGSTOP/SIGCONT", f"stall {STALL:.0f} s (ping timeout {PING:.0f} s), {len(fleet.devices)} devices, "
                              f"{t.row()}, {t.reconnects} reconnects, all back {recovered:.1f} s after SIGCONT")
    assert during == before, "acks during the stall: the server was not stopped"
    assert t.reconnects >= len(fleet.devices), "devices did not notice the stall"
    assert recovered < 30, "devices did not all reconnect"
    assert (t.lost, t.duplicated, t.reordered, t.unexpected) == (0, 0, 0, 0), "\n".join(t.notes[:20])
    assert srv.alive
