"""The RabbitMQ transport in-process, against the machine's real broker: partitioning, topology, confirmed
publishing and fencing. Each test uses its own queue prefix and deletes its queues afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

import normalizers
from alertdesk.distributed import with_partitions
from alertdesk.settings import Settings
from dedup.rabbitmq.broker import SCHEMA_HEADER, Broker, Sender
from dedup.rabbitmq.grouped import AmqpPublisher
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.partitions import Assignment, BadAssignment, partition_of
from dedup.rabbitmq.topology import (
    DEFAULT_PARTITIONS,
    Stream,
    Topology,
    TopologyMismatch,
    declare,
    delete,
    partition_count,
    queue_counts,
)
from dedup.rabbitmq.window import Delivery, Unreadable, Window, decode, until_done
from normalizers.schema import SCHEMA_VERSION, Alert, Unavailable
from tests.cluster import PAYLOADS, eventually, rabbitmqctl
from tests.conftest import AMQP_URL
from tests.process import free_port
from tests.tcpproxy import TcpProxy

PARTITIONS = 8


def an_alert(name: str = "service-acknowledgement") -> Alert:
    body = json.loads((PAYLOADS / "nagios" / f"{name}.json").read_text(encoding="utf-8"))["body"]
    alert = normalizers.normalize("nagios", body, received_at=datetime(2026, 3, 14, 9, 26, 40, tzinfo=UTC))
    assert isinstance(alert, Alert)
    return alert


@pytest.fixture
async def connection() -> AsyncIterator[AbstractConnection]:
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        yield conn


@pytest.fixture
async def topology(connection: AbstractConnection) -> AsyncIterator[Topology]:
    topo = Topology(f"t{uuid.uuid4().hex[:10]}", PARTITIONS)
    try:
        yield topo
    finally:
        await delete(connection, topo)


@contextlib.asynccontextmanager
async def publisher_on(
    url: str, topology: Topology, *, confirm_within: float = 2.0, linger: float = 0.0
) -> AsyncIterator[AmqpPublisher]:
    """An ingest publisher with its broker link running, as `alertdesk ingest` has it."""
    metrics = BrokerMetrics(CollectorRegistry(), "ingest")
    publisher = AmqpPublisher(topology, metrics, timeout=confirm_within, linger=linger)
    link = asyncio.create_task(Broker(url, name="alertdesk test", metrics=metrics).run(publisher.session))
    try:
        yield publisher
    finally:
        link.cancel()
        await asyncio.gather(link, return_exceptions=True)


async def take(
    connection: AbstractConnection, queue: str, count: int = 1
) -> tuple[list[AbstractIncomingMessage], AbstractChannel]:
    """The next `count` messages of a queue, unacked, through a consumer (quorum queues with a single active
    consumer refuse basic.get); closing the returned channel puts them back."""
    channel = await connection.channel()
    got: list[AbstractIncomingMessage] = []
    enough = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        got.append(message)
        if len(got) >= count:
            enough.set()

    await (await channel.get_queue(queue, ensure=False)).consume(on_message)
    await asyncio.wait_for(enough.wait(), 5)
    return got, channel


async def ready(publisher: AmqpPublisher) -> None:
    await eventually(publisher.ready, 10, lambda: "publisher not connected")


pytestmark = pytest.mark.rabbitmq


# --- partitions -------------------------------------------------------------------------------------------


def test_a_key_lands_on_the_same_partition_in_every_process() -> None:
    keys = [f"nagios:web-{i:03d}/DISK /var" for i in range(200)]
    keys += [f"zabbix:trigger/{20000 + i}" for i in range(200)] + [f"solarwinds:{1000 + i}" for i in range(200)]
    here = [partition_of(k, PARTITIONS) for k in keys]
    code = "import json,sys; from dedup.rabbitmq.partitions import partition_of; print(json.dumps([partition_of(k, 8) for k in json.load(sys.stdin)]))"
    for seed in ("1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(keys),
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).parent.parent,
        )
        assert json.loads(out.stdout) == here
    spread = Counter(here)
    assert sorted(spread) == list(range(PARTITIONS))
    assert min(spread.values()) > len(keys) / PARTITIONS / 2


def test_two_workers_own_disjoint_halves_and_stand_by_for_each_other() -> None:
    first, second = Assignment(0, 2, PARTITIONS), Assignment(1, 2, PARTITIONS)
    assert set(first.owned) | set(second.owned) == set(range(PARTITIONS))
    assert not set(first.owned) & set(second.owned)
    assert first.standby == second.owned and second.standby == first.owned
    three = [Assignment(i, 3, PARTITIONS) for i in range(3)]
    assert sorted(p for a in three for p in a.owned) == list(range(PARTITIONS))
    assert [a.standby for a in three] == [three[1].owned, three[2].owned, three[0].owned]
    assert Assignment(0, 1, PARTITIONS).standby == ()


def test_a_worker_index_outside_the_count_is_refused() -> None:
    with pytest.raises(BadAssignment, match="ALERTDESK_WORKER_INDEX"):
        Assignment(2, 2, PARTITIONS)


# --- topology ---------------------------------------------------------------------------------------------


async def test_declaring_twice_is_harmless_and_makes_quorum_queues_with_one_active_consumer(
    connection: AbstractConnection, topology: Topology
) -> None:
    await declare(connection, topology)
    await declare(connection, topology)
    listed = json.loads(rabbitmqctl("list_queues", "name", "type", "arguments", "--formatter", "json"))
    ours = {q["name"]: q for q in listed if q["name"].startswith(f"{topology.prefix}.")}
    partitions = [topology.queue(s, p) for s in Stream for p in range(PARTITIONS)]
    assert sorted(ours) == sorted([*partitions, topology.dead_letters])
    for name in partitions:
        arguments = {a[0]: a[2] for a in ours[name]["arguments"]}
        assert ours[name]["type"] == "quorum"
        assert arguments["x-single-active-consumer"] is True
        assert arguments["x-dead-letter-strategy"] == "at-least-once"
        assert arguments["x-overflow"] == "reject-publish"
        assert arguments["x-dead-letter-exchange"] == topology.dead_letters
        assert arguments["x-delivery-limit"] > 1


async def test_a_queue_declared_with_other_arguments_is_refused_with_the_reason(
    connection: AbstractConnection, topology: Topology
) -> None:
    async with connection.channel() as channel:
        await channel.declare_queue(topology.queue(Stream.TICKETS, 3), durable=True)  # classic, no dead-lettering
    with pytest.raises(TopologyMismatch, match="inequivalent arg") as refused:
        await declare(connection, topology)
    assert "ALERTDESK_BROKER_PREFIX" in str(refused.value)


async def test_fewer_partitions_than_the_broker_has_are_refused(
    connection: AbstractConnection, topology: Topology
) -> None:
    await declare(connection, topology)
    with pytest.raises(TopologyMismatch, match=f"has {PARTITIONS} .* ALERTDESK_PARTITIONS is 4"):
        await declare(connection, Topology(topology.prefix, 4))


# --- publishing -------------------------------------------------------------------------------------------


async def test_an_alert_is_published_persistent_json_named_after_it_to_its_partition(
    connection: AbstractConnection, topology: Topology
) -> None:
    alert = an_alert()
    async with publisher_on(AMQP_URL, topology) as publisher:
        await ready(publisher)
        await publisher.publish(alert)
    partition = partition_of(alert.dedup_key, PARTITIONS)
    (message,), _ = await take(connection, topology.queue(Stream.ALERTS, partition))
    others = [await queue_counts(connection, topology.queue(Stream.ALERTS, p)) for p in range(PARTITIONS)]
    others.pop(partition)
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.message_id == alert.id
    assert (message.headers or {})[SCHEMA_HEADER] == SCHEMA_VERSION
    assert Alert.model_validate_json(message.body) == alert
    assert others == [(0, 0)] * (PARTITIONS - 1)


async def test_publishing_without_a_reachable_broker_is_unavailable_at_once(topology: Topology) -> None:
    async with publisher_on(f"amqp://guest:guest@127.0.0.1:{free_port()}/", topology) as publisher:
        await asyncio.sleep(0.3)  # it is trying to connect, with backoff
        with pytest.raises(Unavailable, match="not connected"):
            await asyncio.wait_for(publisher.publish(an_alert()), 1.0)
        assert not await publisher.ready()


async def test_an_unroutable_alert_is_refused_not_lost(connection: AbstractConnection, topology: Topology) -> None:
    alert = an_alert()
    partition = partition_of(alert.dedup_key, PARTITIONS)
    async with publisher_on(AMQP_URL, topology) as publisher:
        await ready(publisher)
        async with connection.channel() as channel:
            queue = await channel.get_queue(topology.queue(Stream.ALERTS, partition))
            await queue.unbind(topology.exchange(Stream.ALERTS), routing_key=str(partition))
        with pytest.raises(Unavailable, match="no queue is bound"):
            await publisher.publish(alert)


async def test_an_unconfirmed_publish_is_unavailable_and_its_retry_carries_the_same_id(
    connection: AbstractConnection, topology: Topology
) -> None:
    proxy = await TcpProxy(5672).start()
    alert = an_alert()
    try:
        async with publisher_on(f"amqp://guest:guest@127.0.0.1:{proxy.port}/", topology, confirm_within=0.5) as pub:
            await ready(pub)
            proxy.flowing.clear()  # the broker hangs: no confirm comes back
            with pytest.raises(Unavailable, match=r"did not confirm within 0\.5s"):
                await pub.publish(alert)
            proxy.flowing.set()
            await pub.publish(alert)  # the sender's retry, same Idempotency-Key, so the same alert id
    finally:
        await proxy.stop()
    messages, _ = await take(connection, topology.queue(Stream.ALERTS, partition_of(alert.dedup_key, PARTITIONS)), 2)
    ids = [m.message_id for m in messages]
    assert ids == [alert.id, alert.id]  # delivered twice, applied once: the store skips an alert id it has seen


# --- consuming --------------------------------------------------------------------------------------------


async def test_messages_that_can_never_be_alerts_get_a_reason(
    connection: AbstractConnection, topology: Topology
) -> None:
    await declare(connection, topology)
    good = an_alert()
    bodies = [
        aio_pika.Message(good.model_dump_json().encode(), content_type="application/json"),
        aio_pika.Message(b"HOST web-01 DISK CRITICAL", content_type="text/plain"),
        aio_pika.Message(b'{"host": "web-01"}', content_type="application/json"),
        aio_pika.Message(good.model_dump_json().encode(), content_type="application/json", headers={SCHEMA_HEADER: 2}),
    ]
    async with connection.channel() as channel:
        exchange = await channel.get_exchange(topology.exchange(Stream.ALERTS))
        for message in bodies:
            await exchange.publish(message, routing_key="1")
    messages, _ = await take(connection, topology.queue(Stream.ALERTS, 1), len(bodies))
    first, *unreadable = [decode(m, TypeAdapter(Alert)) for m in messages]
    assert first == good
    reasons = [u.reason for u in unreadable if isinstance(u, Unreadable)]
    assert len(reasons) == 3
    assert "content type 'text/plain'" in reasons[0]
    assert "not valid" in reasons[1] and "dedup_key: Field required" in reasons[1]
    assert "schema version 2" in reasons[2]


async def test_a_window_whose_channel_died_is_dropped_and_redelivered(
    connection: AbstractConnection, topology: Topology
) -> None:
    await declare(connection, topology)
    metrics = BrokerMetrics(CollectorRegistry(), "store")
    async with connection.channel() as publishing:
        exchange = await publishing.get_exchange(topology.exchange(Stream.TICKETS))
        await exchange.publish(aio_pika.Message(b"{}", message_id="cmd-1"), routing_key="5")
        sender = Sender(publishing, metrics, timeout=1.0)
        (message,), consuming = await take(connection, topology.queue(Stream.TICKETS, 5))
        window = Window([Delivery(5, consuming, message)], sender)
        attempts = 0

        async def database_down(live: list[Delivery]) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 2:
                await consuming.close()  # the partition moved on: this window must not be committed any more
            raise Unavailable("database unavailable")

        handled = await until_done(window, database_down, metrics, "applying ticket commands")
    (again,), _ = await take(connection, topology.queue(Stream.TICKETS, 5))
    assert handled == [] and attempts == 2
    assert again.message_id == "cmd-1" and again.redelivered


async def test_a_stage_that_fails_unexpectedly_says_why_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a stage must not leave a silent process holding its messages: the error is logged with its
    traceback and `run` ends with it (the process exits, and its unacked messages go to the next consumer)."""
    metrics = BrokerMetrics(CollectorRegistry(), "dedup")

    async def session(connection: AbstractConnection, lost: asyncio.Event) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        async with asyncio.timeout(30):
            await Broker(AMQP_URL, name="alertdesk test", metrics=metrics).run(session)
    failed = [r for r in caplog.records if "stage failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None


async def test_an_unset_partition_count_is_the_broker_s_or_two_for_a_new_broker(
    connection: AbstractConnection, topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    """A deployment that relied on the old default (8) keeps its queues after the default became 2."""
    await declare(connection, topology)
    unset = Settings(broker_url=AMQP_URL, broker_prefix=topology.prefix)
    assert (await with_partitions(unset)).partitions == PARTITIONS
    fresh = unset.model_copy(update={"broker_prefix": f"t{uuid.uuid4().hex[:10]}"})
    assert (await with_partitions(fresh)).partitions == DEFAULT_PARTITIONS == 2
    assert (await with_partitions(unset.model_copy(update={"partitions": 3}))).partitions == 3
    away = unset.model_copy(update={"broker_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
    assert (await with_partitions(away)).partitions == DEFAULT_PARTITIONS
    assert "cannot reach the message broker to read its partition count" in caplog.text


async def test_an_unset_partition_count_waits_for_a_declaration_in_progress(connection: AbstractConnection) -> None:
    """ingest, dedup and store started together on a new broker: one counts while another is half-way through
    declaring 3 partitions. A count of what is there so far (2) would make it refuse the topology and exit."""
    topology = Topology(f"t{uuid.uuid4().hex[:10]}", 3)
    in_order = [(Stream.ALERTS, p) for p in range(3)] + [(Stream.TICKETS, p) for p in range(3)]  # as `declare` does
    try:
        async with connection.channel() as channel:
            for stream, p in in_order[:2]:
                await channel.declare_queue(
                    topology.queue(stream, p), durable=True, arguments=topology.queue_arguments()
                )
            counting = asyncio.create_task(partition_count(connection, topology.prefix, None))
            await asyncio.sleep(0.6)
            assert not counting.done()  # alerts.0 is there, tickets.0 not yet: still being declared
            for stream, p in in_order[2:]:
                await channel.declare_queue(
                    topology.queue(stream, p), durable=True, arguments=topology.queue_arguments()
                )
        assert await counting == 3
    finally:
        await delete(connection, topology)
