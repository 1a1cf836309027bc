"""A reconnect storm: as many connections as the server's open-file limit allows, held by
several client processes (each has its own limit), all losing the server to a kill -9 and
coming back at once. Admission control (--accept-rate) refuses the excess with 1013 and a
retry hint; the time until every connection has its whole backlog is reported, and no
connection may miss a message of its backlog. The same storm without admission control
is run for comparison."""
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.client import PASSWORD, Client
from harness.server import ServerProc

HERE = Path(__file__).resolve().parent
WORKERS = 4
USERS = 40                   # one token each; every connection of a token is a device's connection
GROUPS, GROUP_SIZE, MESSAGES = 4, 10, 5
ACCEPT_RATE = int(os.environ.get("CHATSRV_STORM_ACCEPT_RATE", "1000"))
HEADROOM = 600               # the server's own files, and refused connections still closing


def _target() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = int(os.environ.get("CHATSRV_STORM_CONNECTIONS", str(soft - HEADROOM)))
    return n - n % (USERS)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("accept_rate", [ACCEPT_RATE, 0], ids=["admission", "no-admission"])
async def test_reconnect_storm(tmp_path, report, accept_rate):
    n = _target()
    per_token = n // USERS
    args = ["--rate", "1000000", "--burst", "1000000", "--login-failures", "100000",
            "--accept-rate", str(accept_rate), "--accept-burst", str(accept_rate // 4 or 1), "--auth-timeout", "60"]
    srv = ServerProc(tmp_path / "data", args, log_path=tmp_path / "server.log").start()
    workers = []
    try:
        users = [f"st{i}_{os.getpid() % 10000}" for i in range(USERS)]
        c = await Client.connect(srv.url)
        for u in users:
            await c.signup(u)
        tokens, heads = [], {}
        for u in users:
            d = await Client.connect(srv.url)
            await d.login(u, PASSWORD, "storm")
            await d.until("synced")
            tokens.append(d.token)
            await d.close()
        await c.login(users[0], PASSWORD, "poster")
        await c.until("synced")
        groups = [[users[0], *users[1 + g * (GROUP_SIZE - 1): 1 + (g + 1) * (GROUP_SIZE - 1)]] for g in range(GROUPS)]
        for g, members in enumerate(groups):
            conv = (await c.ok("group_create", name=f"storm{g}", members=members[1:]))["conv"]
            for i in range(MESSAGES):
                await c.send_msg(f"before the storm {i}", conv=conv)
        await c.close()
        for u, tok in zip(users, tokens):
            heads[tok] = sum(1 + MESSAGES for m in groups if u in m)

        chunk = USERS // WORKERS
        for w in range(WORKERS):
            spec = tmp_path / f"worker{w}.json"
            mine = tokens[w * chunk:(w + 1) * chunk]
            spec.write_text(json.dumps({"url": srv.url, "tokens": mine, "per_token": per_token,
                                        "expect": {t: heads[t] for t in mine}, "deadline": 600,
                                        "spread": n / ACCEPT_RATE}))
            workers.append(subprocess.Popen([sys.executable, str(HERE / "storm_worker.py"), str(spec)],
                                            stdout=subprocess.PIPE, stderr=open(tmp_path / f"worker{w}.err", "w"),
                                            text=True, cwd=str(HERE),
                                            env={**os.environ, "PYTHONPATH": str(HERE.parent)}))
        loop = asyncio.get_running_loop()
        for w in workers:
            line = await asyncio.wait_for(loop.run_in_executor(None, w.stdout.readline), 400)
            assert line.startswith("READY"), f"worker: {line!r}"
        t0 = time.monotonic()
        srv.kill9()
        for w in workers:
            assert (await asyncio.wait_for(loop.run_in_executor(None, w.stdout.readline), 60)).startswith("GONE")
        t_up = time.monotonic()          # from the restart on: the server's start-up counts
        srv.start(srv.port)
        ready = time.monotonic() - t_up
        outs = []
        for w in workers:
            line = await asyncio.wait_for(loop.run_in_executor(None, w.stdout.readline), 600)
            outs.append(json.loads(line))
        synced = sorted(t for o in outs for t in o["synced_at"])
        total = sum(o["n"] for o in outs)
        failed = sum(o["failed"] for o in outs)
        lost = sum(o["lost"] for o in outs)
        extra = sum(o["extra"] for o in outs)
        wrong = sum(o["wrong_head"] for o in outs)
        refused = sum(o["refused"] for o in outs)
        errors = sum(o["errors"] for o in outs)
        all_in = synced[-1] - t_up
        half = synced[len(synced) // 2] - t_up
        name = "reconnect storm" + ("" if accept_rate else " without admission control")
        report(name, f"{total} connections in {WORKERS} processes, accept rate {accept_rate or 'unlimited'}/s: "
                                  f"{refused} refusals (1013 with retry hint), {errors} failed attempts, half caught up {half:.1f} s and all "
                                  f"{all_in:.1f} s after the restart began (serving after {ready:.1f} s), "
                                  f"{per_token * sum(heads.values())} backlog messages expected, lost {lost}, "
                                  f"unexpected {extra}, wrong head {wrong}, failed {failed}")
        assert total == n and failed == 0
        assert (lost, extra, wrong) == (0, 0, 0)
        if accept_rate:
            assert refused > 0, "admission control never refused: the storm did not exceed the accept rate"
        else:
            assert refused == 0
        assert srv.alive
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        if srv.alive:
            srv.stop(60)
