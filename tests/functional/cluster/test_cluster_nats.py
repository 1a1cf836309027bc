"""The NATS behaviours docs/cluster.md builds on, checked against a real nats-server with
JetStream (`sync_interval: always`) from tests/harness/natsserver.py, through nats-py:
publish deduplication by Nats-Msg-Id, also across a kill -9 and restart of the server in
the middle of a burst; durable pull consumers that resume in stream order from the
oldest unacknowledged message; a full stream that refuses without storing; a KV key that
only one process can create and that expires; and a request with no responder failing at
once."""
from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from harness.natsserver import ConfigError, NatsServer


async def _stream(js, name="DLV", subjects=("dlv.>",), **kw):
    await js.add_stream(name=name, subjects=list(subjects), storage=StorageType.FILE,
                        duplicate_window=120, **kw)


async def _drain(psub, most: int, timeout: float = 10.0) -> list:
    """Fetches and acks (synchronously) until `most` messages came, or a fetch after the first
    message comes back empty (the consumer has nothing more)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < most and time.monotonic() < deadline:
        try:
            msgs = await psub.fetch(min(100, most - len(got)), timeout=0.5)
        except nats.errors.TimeoutError:
            if got:
                break
            continue
        for m in msgs:
            got.append(m)
            await m.ack_sync()
    return got


async def _until_answering(js, timeout: float = 10.0) -> None:
    """After a restart: until the client has reconnected and JetStream answers (a request sent
    while the client is still reconnecting may be lost with the old connection)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.account_info()
            return
        except (nats.errors.Error, asyncio.TimeoutError):
            assert time.monotonic() < deadline, "JetStream did not answer after the restart"
            await asyncio.sleep(0.05)


def test_config_is_checked_and_syncs_every_write(tmp_path):
    bad = NatsServer(tmp_path / "bad", sync="sometimes")
    with pytest.raises(ConfigError, match="sync_interval"):
        bad.check()
    with NatsServer(tmp_path / "good") as s:
        js = s.monitor("/varz")["jetstream"]["config"]
        assert js["sync_always"] is True
        assert js["store_dir"].startswith(str(tmp_path / "good"))


async def test_publish_is_deduplicated_by_msg_id(nats_server, nats_connect):
    js = (await nats_connect(nats_server)).jetstream()
    await _stream(js)
    first = await js.publish("dlv.n1", b"a", headers={"Nats-Msg-Id": "hc1:1"})
    again = await js.publish("dlv.n1", b"a", headers={"Nats-Msg-Id": "hc1:1"})
    other = await js.publish("dlv.n1", b"b", headers={"Nats-Msg-Id": "hc1:2"})
    assert not first.duplicate and again.duplicate is True
    assert again.seq == first.seq and other.seq == first.seq + 1
    assert (await js.stream_info("DLV")).state.messages == 2


async def test_burst_across_nats_kill9_and_restart_loses_no_ack_and_stores_each_id_once(
        nats_server, nats_connect):
    """A publisher that retries each publish with the same Nats-Msg-Id until it is acked, as a
    node's outbox does, while nats-server is killed -9 and restarted under it: every acked
    publish is in the stream at the seq its ack named, and no id is stored twice."""
    nc = await nats_connect(nats_server)
    js = nc.jetstream(timeout=1.0)
    await _stream(js)
    n, window = 1500, 32
    acked: dict[int, int] = {}
    retried = 0

    async def publish_until_acked(i: int) -> None:
        nonlocal retried
        while True:
            try:
                ack = await js.publish("dlv.n1", b"m%d" % i, headers={"Nats-Msg-Id": f"hc1:{i}"})
                acked[i] = ack.seq
                return
            except (nats.errors.Error, asyncio.TimeoutError):
                retried += 1
                await asyncio.sleep(0.05)

    async def burst() -> None:
        sem = asyncio.Semaphore(window)

        async def one(i):
            async with sem:
                await publish_until_acked(i)
        await asyncio.gather(*(one(i) for i in range(n)))

    task = asyncio.create_task(burst())
    deadline = time.monotonic() + 10
    while len(acked) < n // 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert 0 < len(acked) < n, "the kill must land in the middle of the burst"
    nats_server.kill9()
    await asyncio.sleep(0.3)
    nats_server.restart()
    await asyncio.wait_for(task, 30)
    assert retried > 0, "the restart went unnoticed: nothing was retried"

    state = (await js.stream_info("DLV")).state
    assert state.messages == n, f"{state.messages} stored for {n} distinct ids"
    for i, seq in acked.items():
        m = await js.get_msg("DLV", seq)
        assert m.data == b"m%d" % i and m.headers["Nats-Msg-Id"] == f"hc1:{i}"
    assert sorted(acked.values()) == list(range(state.first_seq, state.last_seq + 1))


async def test_durable_consumer_resumes_in_order_after_nats_kill9(nats_server, nats_connect):
    """What a node's delivery consumer can rely on across a kill -9 of nats-server: recreating
    the durable consumer (as a node does when it starts or reconnects) delivers at once, in
    stream order, everything not acknowledged, including what was fetched but never acked.
    Acks themselves are not all durable (consumer state is written behind): some acked
    messages come again, which is why a node drops what it already has by (conv, seq)."""
    nc = await nats_connect(nats_server)
    js = nc.jetstream(timeout=2.0)
    await _stream(js, retention=RetentionPolicy.WORK_QUEUE)
    for i in range(40):
        await js.publish("dlv.n2", b"%d" % i, headers={"Nats-Msg-Id": f"hc1:{i}"})
    cfg = ConsumerConfig(durable_name="dlv-n2", filter_subject="dlv.n2", deliver_policy=DeliverPolicy.ALL,
                         ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_ack_pending=1000)
    await js.add_consumer("DLV", cfg)
    psub = await js.pull_subscribe_bind("dlv-n2", stream="DLV")
    fetched = await psub.fetch(30, timeout=2)
    assert [m.data for m in fetched] == [b"%d" % i for i in range(30)]
    for m in fetched[:20]:
        await m.ack_sync()

    nats_server.kill9()
    nats_server.restart()
    await _until_answering(nc.jetstream(timeout=0.5))
    await js.delete_consumer("DLV", "dlv-n2")
    await js.add_consumer("DLV", cfg)
    psub = await js.pull_subscribe_bind("dlv-n2", stream="DLV")
    rest = [int(m.data) for m in await _drain(psub, 40)]
    assert rest and rest == list(range(rest[0], 40)), f"not an in-order suffix: {rest}"
    assert rest[0] <= 20, f"unacked messages lost: resumed at {rest[0]}"
    assert (await js.stream_info("DLV")).state.messages == 0    # a work queue: acked is gone


async def test_full_stream_refuses_without_storing_and_takes_the_same_id_once_drained(
        nats_server, nats_connect):
    """What bounds the deliveries waiting for a node that is down: a full stream (max_bytes,
    discard new) refuses a publish with 503 / 10077 and stores nothing of it; once the
    consumer has acked some, the outbox's republish of the same id is stored, once."""
    js = (await nats_connect(nats_server)).jetstream()
    await _stream(js, retention=RetentionPolicy.WORK_QUEUE, max_bytes=64 * 1024, discard=DiscardPolicy.NEW)
    n = 0
    with pytest.raises(nats.js.errors.ServiceUnavailableError) as refused:
        for n in range(1000):
            await js.publish("dlv.n3", b"x" * 1000, headers={"Nats-Msg-Id": f"hc1:{n}"})
    assert refused.value.err_code == 10077
    assert 0 < n < 1000 and (await js.stream_info("DLV")).state.messages == n

    cfg = ConsumerConfig(durable_name="dlv-n3", filter_subject="dlv.n3", ack_policy=AckPolicy.EXPLICIT)
    await js.add_consumer("DLV", cfg)
    psub = await js.pull_subscribe_bind("dlv-n3", stream="DLV")
    assert len(await _drain(psub, 10)) == 10
    again = await js.publish("dlv.n3", b"x" * 1000, headers={"Nats-Msg-Id": f"hc1:{n}"})
    assert not again.duplicate
    assert (await js.stream_info("DLV")).state.messages == n - 10 + 1


async def test_kv_key_has_one_creator_and_expires(nats_server, nats_connect):
    """The lease a node name is held by: `create` fails while the key lives, a stale revision
    cannot refresh it, and without refreshes it expires so the name can be taken again."""
    js = (await nats_connect(nats_server)).jetstream()
    kv = await js.create_key_value(bucket="chat_nodes", ttl=1.0, history=1)
    rev = await kv.create("n1", b"incarnation-a")
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.create("n1", b"incarnation-b")
    rev2 = await kv.update("n1", b"incarnation-a", last=rev)
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.update("n1", b"incarnation-b", last=rev)
    deadline = time.monotonic() + 5
    while True:
        try:
            await kv.get("n1")
        except KeyNotFoundError:
            break
        assert time.monotonic() < deadline, "the key did not expire"
        await asyncio.sleep(0.05)
    assert await kv.create("n1", b"incarnation-b") > rev2


async def test_request_to_a_subject_nobody_serves_fails_at_once(nats_server, nats_connect):
    """How a node learns that the owner of a key is not running: no responders, not a timeout."""
    nc = await nats_connect(nats_server)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("chat.req.n9", b"{}", timeout=5)

    async def serve(msg):
        await msg.respond(b"ok:" + msg.data)
    sub = await nc.subscribe("chat.req.n1", cb=serve)
    assert (await nc.request("chat.req.n1", b"x", timeout=5)).data == b"ok:x"
    await sub.unsubscribe()
