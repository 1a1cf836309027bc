"""Durability across kill -9 and restarts: acknowledged means delivered, cid survives."""
import asyncio
import signal

from conftest import uname
from harness.client import PASSWORD, Client, ConnectionLost, dconv

FAST = ["--rate", "1000000", "--burst", "1000000"]


async def test_idempotent_cid_across_restart(make_server, connect):
    srv = make_server(*FAST)
    a, b = uname("ra"), uname("rb")
    c = await connect(srv)
    await c.signup(a)
    await c.signup(b)
    await c.login(a, PASSWORD, "d1")
    await c.backlog()
    r1 = await c.ok("send", to=b, body="before restart", cid="persist-1")
    srv.kill9()
    await c.closed(3)
    srv.restart()

    c2 = await connect(srv)
    await c2.auth(c.token)                          # the token survives too
    msgs, head = await c2.backlog()
    assert [m["body"] for m in msgs] == ["before restart"] and head == 1
    r2 = await c2.ok("send", to=b, body="before restart", cid="persist-1")
    assert (r2["conv"], r2["seq"], r2["ts"]) == (r1["conv"], r1["seq"], r1["ts"])
    r3 = await c2.ok("send", to=b, body="after restart", cid="persist-2")
    assert r3["seq"] == r1["seq"] + 1            # the seq counter survived

    bc = await connect(srv)
    await bc.login(b, PASSWORD, "d1")
    msgs, head = await bc.backlog()
    assert [(m["seq"], m["body"]) for m in msgs] == [(1, "before restart"), (2, "after restart")]
    assert head == 2
    hist = (await bc.ok("history", conv=dconv(a, b)))["messages"]
    assert [m["body"] for m in hist] == ["before restart", "after restart"]

    # a clean restart (SIGTERM) keeps everything too
    assert srv.stop() == 0
    srv.restart()
    c3 = await connect(srv)
    await c3.login(a, PASSWORD, "d2")
    await c3.backlog()
    r4 = await c3.ok("send", to=b, body="whatever", cid="persist-1")
    assert (r4["conv"], r4["seq"], r4["ts"]) == (r1["conv"], r1["seq"], r1["ts"])


async def test_state_survives_restart(make_server, connect):
    """Users, passwords, cursors, read markers and convs survive a kill -9."""
    srv = make_server(*FAST)
    a, b = uname("sa"), uname("sb")
    ca = await connect(srv)
    await ca.signup(a)
    await ca.login(a, PASSWORD, "pa")
    await ca.backlog()
    cb = await connect(srv)
    await cb.signup(b)
    await cb.login(b, PASSWORD, "pb")
    await cb.backlog()
    for i in range(4):
        await ca.send_msg(f"m{i}", to=b)
    await cb.events_of("msg", 4)
    await cb.ok("ack", upto=2)
    await cb.send_msg("reply", to=a)              # b has read up to seq 5
    srv.kill9()
    srv.restart()
    cb2 = await connect(srv)
    assert await cb2.err("signup", user=b, password=PASSWORD) == "conflict"
    await cb2.login(b, PASSWORD, "pb")
    msgs, head = await cb2.backlog()
    assert [m["inbox"] for m in msgs] == [3, 4, 5] and head == 5
    convs = (await cb2.ok("convs"))["convs"]
    assert len(convs) == 1
    x = convs[0]
    assert (x["conv"], x["last_seq"], x["read_seq"], x["unread"]) == (dconv(a, b), 5, 5, 0)
    assert x["last"]["body"] == "reply"


async def test_durability_burst_kill9_restart(make_server, connect):
    srv = make_server(*FAST)
    n_senders, per_sender = 8, 250                  # 2000 sends
    rcpt = uname("rcpt")
    senders = [uname(f"s{i}") for i in range(n_senders)]
    reg = await connect(srv)
    await reg.signup(rcpt)
    for s in senders:
        await reg.signup(s)
    await reg.close()
    # the recipient is online during the burst: whatever it receives live must have
    # been durably committed ("nobody receives a message before it is durably committed")
    live = await connect(srv)
    await live.login(rcpt, PASSWORD, "live")
    await live.backlog()
    clients = []
    for s in senders:
        c = await connect(srv)
        await c.login(s, PASSWORD, "burst")
        await c.backlog()
        clients.append(c)

    acked: dict[str, dict] = {}                     # cid -> ok reply
    body_of = {}
    kill_at = 1200                                  # kill -9 once this many are acknowledged
    killed = asyncio.Event()
    errors = []

    def on_reply(cid, fut):
        if fut.cancelled() or fut.exception() is not None:
            return
        r = fut.result()
        if "ok" in r:
            acked[cid] = r["ok"]
            if len(acked) >= kill_at and not killed.is_set():
                srv.proc.send_signal(signal.SIGKILL)    # right now, from the callback
                killed.set()
        else:
            errors.append(r)

    # every sender pipelines its sends with up to WINDOW in flight, so that the kill
    # lands while hundreds of sends are in flight and more are still to come
    WINDOW = 50
    futs = []

    async def sender(i, c):
        sem = asyncio.Semaphore(WINDOW)
        for j in range(per_sender):
            await sem.acquire()
            # keep sending after the kill signal until the connection is seen lost: the
            # server answers a whole group commit at once, so only sends made after the
            # signal are sure to be in flight when the process dies
            if c.disconnected:
                return
            cid = f"{senders[i]}-{j}"
            body = f"burst {i} {j} " + "b" * (j % 50)
            body_of[cid] = (senders[i], body)
            f = c.start("send", to=rcpt, body=body, cid=cid)
            f.add_done_callback(lambda fut, cid=cid: (sem.release(), on_reply(cid, fut)))
            futs.append(f)

    tasks = [asyncio.create_task(sender(i, c)) for i, c in enumerate(clients)]
    try:
        await asyncio.wait_for(killed.wait(), 30)
    except asyncio.TimeoutError:
        raise AssertionError(f"only {len(acked)} sends acknowledged within 30 s") from None
    srv.kill9()
    await asyncio.gather(*tasks)
    results = await asyncio.gather(*futs, return_exceptions=True)
    in_flight_at_kill = sum(1 for r in results if isinstance(r, ConnectionLost))   # never answered
    assert all(isinstance(r, (dict, ConnectionLost)) for r in results), \
        [r for r in results if not isinstance(r, (dict, ConnectionLost))][:3]
    assert not errors, f"{len(errors)} sends answered with an error before the kill: {errors[:3]}"
    n_acked = len(acked)
    assert n_acked >= kill_at
    killed_mid_burst = n_acked < len(futs) and in_flight_at_kill > 0

    srv.restart()
    rc = await connect(srv)
    await rc.login(rcpt, PASSWORD, "phone")
    msgs, head = await rc.backlog(timeout=30)
    print(f"durability: {n_acked} of {len(futs)} sent acknowledged before kill -9 "
          f"({in_flight_at_kill} in flight at the kill), "
          f"{head} in the recipient's inbox after restart, "
          f"{sum(1 for e in live.events if e.get('ev') == 'msg')} received live before it")

    # inbox positions: 1..head, no gaps, no duplicates, in order
    assert [m["inbox"] for m in msgs] == list(range(1, head + 1))
    got = {}
    for m in msgs:
        key = (m["conv"], m["seq"])
        assert key not in got, f"{key} twice in the inbox"
        got[key] = m
    # every acknowledged message is there, with the acknowledged conv/seq/ts and content
    missing = []
    for cid, ok in acked.items():
        m = got.get((ok["conv"], ok["seq"]))
        if m is None:
            missing.append((cid, ok))
            continue
        sender, body = body_of[cid]
        assert (m["cid"], m["from"], m["body"], m["ts"]) == (cid, sender, body, ok["ts"]), (m, ok)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    # every message the online recipient received before the kill survived it
    live_seen = [(e["conv"], e["seq"]) for e in live.events if e.get("ev") == "msg"]
    lost_live = [k for k in live_seen if k not in got]
    assert not lost_live, f"{len(lost_live)} messages delivered live were lost: {lost_live[:3]}"
    # per conversation: seqs 1..max, in order, no gaps
    per_conv: dict[str, list[int]] = {}
    for m in msgs:
        per_conv.setdefault(m["conv"], []).append(m["seq"])
    for conv, seqs in per_conv.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{conv}: {seqs[:20]}..."
        assert all(m["from"] in senders for m in msgs)
    # anything delivered but not acknowledged was really sent by its sender (no junk)
    for m in msgs:
        assert m["cid"] in body_of and body_of[m["cid"]] == (m["from"], m["body"]), m

    # resending every acknowledged cid returns the same reply and stores nothing new
    resend = []
    for i, s in enumerate(senders):
        c = await connect(srv)
        await c.auth(clients[i].token)
        await c.backlog(timeout=30)
        for cid, ok in acked.items():
            if cid.startswith(s + "-"):
                resend.append((ok, c.start("send", to=rcpt, body="changed", cid=cid)))
    for ok, fut in resend:
        r = await asyncio.wait_for(fut, 30)
        assert "ok" in r, r
        assert (r["ok"]["conv"], r["ok"]["seq"], r["ok"]["ts"]) == (ok["conv"], ok["seq"], ok["ts"])
    await rc.no_event("msg", within=0.3)

    # a second connection of another device after reconnect sees the same inbox
    rc2 = await connect(srv)
    await rc2.login(rcpt, PASSWORD, "laptop")
    msgs2, head2 = await rc2.backlog(timeout=30)
    assert head2 == head and [(m["conv"], m["seq"]) for m in msgs2] == [(m["conv"], m["seq"]) for m in msgs]
    # record whether the kill really landed mid-burst (it should with 2000 pipelined sends)
    assert killed_mid_burst, f"all {n_acked} sends were acknowledged before the kill"
    assert len(futs) < n_senders * per_sender, "the kill came after the whole burst was sent"
