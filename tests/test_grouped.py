"""Group publish at ingest and batch messages at dedup, against the machine's real RabbitMQ (and PostgreSQL for
the pipeline test): concurrent alerts share confirmed messages, a failed confirm answers every request of its
message, and the dedup stage reads both the batches and the single-alert messages an older ingest left behind."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from dedup.rabbitmq.broker import COUNT_HEADER, REASON_HEADER, encode
from dedup.rabbitmq.grouped import AmqpPublisher, Waiting, group
from dedup.rabbitmq.partitions import partition_of
from dedup.rabbitmq.topology import Stream, Topology, declare, queue_counts
from normalizers.schema import Alert, Kind, Severity, Source, Unavailable
from tests.cluster import Pipeline, applied_count, eventually
from tests.conftest import AMQP_URL
from tests.tcpproxy import TcpProxy
from tests.test_broker import connection, publisher_on, ready, take, topology

__all__ = ["connection", "topology"]  # fixtures shared with test_broker

PARTITIONS = 8


def alert(n: int, kind: Kind = Kind.PROBLEM) -> Alert:
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.NAGIOS,
        dedup_key=f"nagios:web-{n:03d}/DISK /",
        kind=kind,
        severity=Severity.CRITICAL,
        host=f"web-{n:03d}",
        title="DISK CRITICAL",
        received_at=datetime.now(UTC),
    )


def waiting(a: Alert, size: int = 100) -> Waiting:
    return Waiting(a, b"x" * size, asyncio.get_running_loop().create_future())


async def queued(connection: AbstractConnection, topology: Topology) -> tuple[Counter[str], int]:
    """How many times each alert id sits in the alerts queues, and in how many messages; checks each message's shape."""
    found: Counter[str] = Counter()
    messages = 0
    for p in range(PARTITIONS):
        count = (await queue_counts(connection, topology.queue(Stream.ALERTS, p)) or (0, 0))[0]
        if not count:
            continue
        taken, _ = await take(connection, topology.queue(Stream.ALERTS, p), count)
        for message in taken:
            messages += 1
            body = json.loads(message.body)
            items = body if isinstance(body, list) else [body]
            if isinstance(body, list):
                assert (message.headers or {})[COUNT_HEADER] == len(items) > 1
            assert message.message_id == items[0]["id"]
            for item in items:
                assert partition_of(item["dedup_key"], PARTITIONS) == p
                found[item["id"]] += 1
    return found, messages


async def test_a_round_is_one_message_per_partition_in_arrival_order_within_the_caps() -> None:
    alerts = [waiting(alert(n % 4)) for n in range(12)]  # 4 keys, 3 alerts each
    by_key = group(alerts, lambda a: int(a.host[-1]) % 2, max_alerts=100, max_bytes=10_000)
    assert [(p, [w.alert.host for w in batch]) for p, batch in by_key] == [
        (0, ["web-000", "web-002"] * 3),
        (1, ["web-001", "web-003"] * 3),
    ]
    capped = group(alerts, lambda a: 0, max_alerts=5, max_bytes=10_000)
    assert [len(batch) for _, batch in capped] == [5, 5, 2]
    assert [w for _, batch in capped for w in batch] == alerts
    by_bytes = group(alerts, lambda a: 0, max_alerts=100, max_bytes=350)  # 101 bytes per alert with its comma
    assert [len(batch) for _, batch in by_bytes] == [3, 3, 3, 3]
    huge = group([waiting(alert(1), 1000), waiting(alert(2))], lambda a: 0, max_alerts=100, max_bytes=350)
    assert [len(batch) for _, batch in huge] == [1, 1]  # one alert over the cap still travels, alone


async def test_concurrent_alerts_share_confirmed_messages_each_alert_in_exactly_one(
    connection: AbstractConnection, topology: Topology
) -> None:
    alerts = [alert(n % 50) for n in range(400)]
    async with publisher_on(AMQP_URL, topology) as publisher:
        await ready(publisher)
        await asyncio.gather(*(publisher.publish(a) for a in alerts))
    found, messages = await queued(connection, topology)
    assert found == {a.id: 1 for a in alerts}
    assert messages < len(alerts) / 4  # grouped: far fewer messages than alerts


async def test_with_a_linger_a_trickle_shares_messages_and_an_alert_after_a_pause_goes_at_once(
    connection: AbstractConnection, topology: Topology
) -> None:
    """Moderate load: alerts 5 ms apart, each confirmed in a millisecond or two, would each be a message of their
    own; rounds at least 50 ms apart make ~10 messages of them. After a pause the first alert does not wait."""
    first, lone, trickle = alert(8), alert(8), [alert(7) for _ in range(100)]  # one key: one partition
    async with publisher_on(AMQP_URL, topology, linger=0.05) as publisher:
        await ready(publisher)
        await publisher.publish(first)
        await asyncio.sleep(0.1)  # a pause longer than the linger
        started = asyncio.get_running_loop().time()
        await publisher.publish(lone)
        assert asyncio.get_running_loop().time() - started < 0.04  # sent at once, not a linger later

        async def later(n: int, a: Alert) -> None:
            await asyncio.sleep(n * 0.005)
            await publisher.publish(a)

        await asyncio.gather(*(later(n, a) for n, a in enumerate(trickle)))
    found, messages = await queued(connection, topology)
    assert found == {a.id: 1 for a in [first, lone, *trickle]}
    assert messages <= 2 + 0.5 / 0.05 + 3, messages  # the two lone alerts, then one message per linger


async def test_an_unconfirmed_message_answers_unavailable_to_every_request_of_it_and_retries_go_through(
    connection: AbstractConnection, topology: Topology
) -> None:
    proxy = await TcpProxy(5672).start()
    alerts = [alert(n % 3) for n in range(30)]
    try:
        async with publisher_on(f"amqp://guest:guest@127.0.0.1:{proxy.port}/", topology, confirm_within=0.5) as pub:
            await ready(pub)
            proxy.flowing.clear()  # the broker hangs: no confirm comes back
            outcomes = await asyncio.gather(*(pub.publish(a) for a in alerts), return_exceptions=True)
            proxy.flowing.set()
            assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
            await asyncio.gather(*(pub.publish(a) for a in alerts))  # the senders' retries: same alert ids
    finally:
        await proxy.stop()
    found, _ = await queued(connection, topology)
    assert set(found) == {a.id for a in alerts}  # the retries are durable
    assert set(found.values()) <= {1, 2}  # the unconfirmed first tries may be there too: the store counts ids once


async def test_dedup_reads_an_old_backlog_and_batches_and_dead_letters_a_poison_alert_alone(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    try:
        olds = [alert(n) for n in range(20)]
        batch = [alert(n) for n in range(20, 23)]
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            await declare(connection, pipeline.topology)  # what the previous version left on the broker
            channel = await connection.channel()
            exchange = await channel.get_exchange(pipeline.topology.exchange(Stream.ALERTS))
            for a in olds:  # single-alert messages, as an ingest before group publish wrote them
                await exchange.publish(encode(a, a.id), routing_key=str(partition_of(a.dedup_key, PARTITIONS)))
            poison = {"id": "poison-1", "host": "web-999"}
            items = [batch[0].model_dump(mode="json"), poison, *(b.model_dump(mode="json") for b in batch[1:])]
            message = encode(batch[0], batch[0].id)
            message.body = json.dumps(items).encode()
            assert message.headers is not None
            message.headers[COUNT_HEADER] = len(items)
            await exchange.publish(message, routing_key="0")  # a partition with neighbours of other partitions: fine
            await pipeline.start(workers=1)

            async def all_applied() -> bool:
                return await applied_count(pipeline.schema) == len(olds) + len(batch)

            await eventually(all_applied, 30, lambda: f"not every alert applied\n{pipeline.logs()}")
            dead, _ = await take(connection, pipeline.topology.dead_letters, 1)
            await asyncio.sleep(0.5)  # `dead` would grow if anything else had been dead-lettered
        (letter,) = dead
        assert json.loads(letter.body) == poison  # alone, without its neighbours
        assert letter.message_id == "poison-1"
        assert "Field required" in str((letter.headers or {})[REASON_HEADER])
    finally:
        await pipeline.close()


pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


async def taken_alone(pub: AmqpPublisher) -> None:
    """Until a round has taken what was queued (it is in flight): what is published next queues behind it."""
    for _ in range(10_000):
        await asyncio.sleep(0)
        if not any(pub._queued):
            return
    raise AssertionError("no round took the queued alert")


async def test_a_request_still_queued_when_its_time_is_up_is_withdrawn_and_never_published(
    connection: AbstractConnection, topology: Topology
) -> None:
    """A 503 means "not published" for every alert that was not inside the message in flight: requests queued
    behind a message that never confirms have (almost) no time left when it fails, and are not sent."""
    proxy = await TcpProxy(5672).start()
    first, behind = alert(7), [alert(7) for _ in range(9)]  # one key: one partition, queued behind the first
    try:
        async with publisher_on(f"amqp://guest:guest@127.0.0.1:{proxy.port}/", topology, confirm_within=1.0) as pub:
            await ready(pub)
            proxy.flowing.clear()  # the broker hangs: the first message's confirm never comes
            in_flight = asyncio.create_task(pub.publish(first))
            await taken_alone(pub)
            outcomes = await asyncio.gather(*(pub.publish(a) for a in behind), return_exceptions=True)
            assert all(isinstance(o, Unavailable) and "not published" in str(o) for o in outcomes), outcomes
            with pytest.raises(Unavailable):
                await in_flight
            proxy.flowing.set()
            await asyncio.sleep(0.5)
    finally:
        await proxy.stop()
    found, _ = await queued(connection, topology)
    assert not set(found) & {a.id for a in behind}  # withdrawn: in no message


async def test_a_full_queue_refuses_at_once(topology: Topology) -> None:
    proxy = await TcpProxy(5672).start()
    try:
        async with publisher_on(f"amqp://guest:guest@127.0.0.1:{proxy.port}/", topology, confirm_within=2.0) as pub:
            await ready(pub)
            pub._max_pending = 5
            proxy.flowing.clear()
            waiting = [asyncio.create_task(pub.publish(alert(3)))]
            await taken_alone(pub)  # in flight; the next five queue behind it
            waiting += [asyncio.create_task(pub.publish(alert(3))) for _ in range(5)]
            await asyncio.sleep(0)
            started = asyncio.get_running_loop().time()
            with pytest.raises(Unavailable, match="overloaded"):
                await pub.publish(alert(3))
            assert asyncio.get_running_loop().time() - started < 0.5
            proxy.flowing.set()
            await asyncio.gather(*waiting, return_exceptions=True)
    finally:
        await proxy.stop()
