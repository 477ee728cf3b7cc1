"""The RabbitMQ topology: two partitioned streams and a dead-letter queue, declared by whoever starts first.

    <prefix>.alerts   (direct) ──"0".."N-1"──► <prefix>.alerts.0 … .N-1     ingest → dedup
    <prefix>.tickets  (direct) ──"0".."N-1"──► <prefix>.tickets.0 … .N-1    dedup → store
    <prefix>.dead-letters (fanout) ─────────► <prefix>.dead-letters         what can never be processed

Partition queues are quorum queues with single active consumer, a delivery limit and at-least-once
dead-lettering (which needs `overflow: reject-publish`): a message requeued too often reaches the dead-letter
queue rather than looping, and is never dropped on the way. Declaring is idempotent; queue arguments cannot
change after declaration, so a topology declared with other arguments or another partition count is refused
with a message saying what differs, never silently mixed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import ChannelLockedResource, ChannelNotFoundEntity, ChannelPreconditionFailed

from normalizers.schema import AlertdeskError

# Each partition costs a message per ingest confirm round and per dedup window, whatever the rate (measured: on two
# cores, 8 partitions carry ~35% fewer alerts/s than 2). Two serve up to two workers per stage; more need more.
DEFAULT_PARTITIONS = 2
DELIVERY_LIMIT = 20  # deliveries before the broker dead-letters a message; a worker restart costs one
_SETTLE_ROUNDS = 20
_SETTLE_SECONDS = 0.25


class Stream(StrEnum):
    ALERTS = "alerts"  # ingest → dedup, one message per alert
    TICKETS = "tickets"  # dedup → store, one message per ticket command


class TopologyMismatch(AlertdeskError):
    """The broker already holds this prefix's queues with other arguments or another partition count."""


@dataclass(frozen=True)
class Topology:
    prefix: str
    partitions: int

    def exchange(self, stream: Stream) -> str:
        return f"{self.prefix}.{stream.value}"

    def queue(self, stream: Stream, partition: int) -> str:
        return f"{self.prefix}.{stream.value}.{partition}"

    def presence(self, stream: Stream, index: int) -> str:
        """A worker's presence queue: exclusive to its connection, so it exists exactly while the worker lives."""
        return f"{self.prefix}.{stream.value}.worker-{index}"

    @property
    def dead_letters(self) -> str:
        """Name of both the dead-letter exchange and its queue."""
        return f"{self.prefix}.dead-letters"

    def stream_of(self, exchange_or_queue: str) -> Stream | None:
        """`<prefix>.alerts` or `<prefix>.alerts.3` → ALERTS: where a dead letter came from."""
        for stream in Stream:
            name = self.exchange(stream)
            if exchange_or_queue == name or exchange_or_queue.startswith(f"{name}."):
                return stream
        return None

    def queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": self.dead_letters,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


async def declare(connection: AbstractConnection, topology: Topology) -> None:
    """Create what is missing, check what exists. Raises `TopologyMismatch`."""
    for stream in Stream:
        await _check_partition_count(connection, topology, stream)
    try:
        async with connection.channel(publisher_confirms=False) as channel:
            dlx = await channel.declare_exchange(topology.dead_letters, aio_pika.ExchangeType.FANOUT, durable=True)
            dlq = await channel.declare_queue(topology.dead_letters, durable=True, arguments={"x-queue-type": "quorum"})
            await dlq.bind(dlx)
            arguments = topology.queue_arguments()
            for stream in Stream:
                exchange = await channel.declare_exchange(
                    topology.exchange(stream), aio_pika.ExchangeType.DIRECT, durable=True
                )
                for p in range(topology.partitions):
                    queue = await channel.declare_queue(topology.queue(stream, p), durable=True, arguments=arguments)
                    await queue.bind(exchange, routing_key=str(p))
    except ChannelPreconditionFailed as exc:
        raise TopologyMismatch(
            f"the broker already has alertdesk's topology '{topology.prefix}' with other settings ({exc.args[0]}); "
            "queue arguments cannot change in place: drain and delete those queues, or use another "
            "ALERTDESK_BROKER_PREFIX"
        ) from None


async def delete(connection: AbstractConnection, topology: Topology) -> None:
    """Remove every queue and exchange of `topology`, messages included (tests, decommissioning)."""
    async with connection.channel(publisher_confirms=False) as channel:
        for stream in Stream:
            for p in range(topology.partitions):
                await channel.queue_delete(topology.queue(stream, p))
            await channel.exchange_delete(topology.exchange(stream))
        await channel.queue_delete(topology.dead_letters)
        await channel.exchange_delete(topology.dead_letters)


async def queue_counts(connection: AbstractConnection, name: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue, or None when it does not exist (or is another's exclusive one)."""
    try:
        async with connection.channel(publisher_confirms=False) as channel:
            queue = await channel.declare_queue(name, passive=True)
    except (ChannelNotFoundEntity, ChannelLockedResource):
        return None
    result = queue.declaration_result
    return int(result.message_count or 0), int(result.consumer_count or 0)


async def ready_messages(channel: AbstractChannel, names: list[str]) -> int:
    """Ready messages in these existing queues, asked on one open channel (a missing queue would close it)."""
    total = 0
    for name in names:
        queue = await channel.declare_queue(name, passive=True)
        total += int(queue.declaration_result.message_count or 0)
    return total


async def queue_exists(connection: AbstractConnection, name: str) -> bool:
    """True also for a queue exclusive to another connection (a presence queue of a live worker)."""
    try:
        async with connection.channel(publisher_confirms=False) as channel:
            await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    except ChannelLockedResource:
        return True
    return True


async def partition_count(connection: AbstractConnection, prefix: str, configured: int | None) -> int:
    """The partition count to use: `configured` (ALERTDESK_PARTITIONS), else as many partition queues as the broker
    holds for `prefix` (so a deployment that relied on an older default keeps its queues), else the default.

    Stages started together on a new broker: one may be declaring the queues while another counts them, and a
    count taken half-way (one alerts queue of two) made that one refuse the whole topology and exit. `declare`
    makes every alerts queue before the first tickets queue, so the alerts count is whole once `tickets.0`
    exists; until then it is given a few seconds to settle.
    """
    if configured is not None:
        return configured
    probe = Topology(prefix, 1)
    count = 0
    for _ in range(_SETTLE_ROUNDS):
        count = 0
        while await queue_exists(connection, probe.queue(Stream.ALERTS, count)):
            count += 1
        if not count:
            return DEFAULT_PARTITIONS
        if await queue_exists(connection, probe.queue(Stream.TICKETS, 0)):
            return count
        await asyncio.sleep(_SETTLE_SECONDS)  # another process is declaring the topology right now
    return count  # a declaration that stopped half-way: keep what is there


async def _check_partition_count(connection: AbstractConnection, topology: Topology, stream: Stream) -> None:
    """Refuse another partition count: keys would move between partitions and lose their order.

    More queues than ours show at once. Fewer show as a gap at the top; the gap is given a few seconds to fill,
    since another process may be declaring the same topology for the first time right now.
    """
    n = topology.partitions
    for _ in range(_SETTLE_ROUNDS):
        if await queue_exists(connection, topology.queue(stream, n)):
            break
        if not await queue_exists(connection, topology.queue(stream, 0)) or await queue_exists(
            connection, topology.queue(stream, n - 1)
        ):
            return
        await asyncio.sleep(_SETTLE_SECONDS)
    existing = 0
    while await queue_exists(connection, topology.queue(stream, existing)):
        existing += 1
    raise TopologyMismatch(
        f"the broker has {existing} '{topology.exchange(stream)}' partition queues but ALERTDESK_PARTITIONS "
        f"is {n}: keys would move between partitions and lose their order; set ALERTDESK_PARTITIONS={existing}, "
        "or drain the pipeline and delete those queues first"
    )


async def close_quietly(connection: AbstractConnection | None, within: float = 5.0) -> None:
    """Close, ignoring errors, and give up after `within` seconds: a close that never completes (a broker that
    stopped answering) must not keep a process that is on its way out, or reconnecting, hanging."""
    if connection is not None and not connection.is_closed:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(within):
                await connection.close()
