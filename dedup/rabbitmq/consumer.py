"""A worker's side of a partitioned stream: consume the partitions it holds in windows, ack only what is safe.

Each held partition has its own channel (prefetch-limited) and single active consumer, so one partition's
messages arrive in order and only here. Deliveries of all held partitions gather in one window, closed by count
or by time after its first message; the stage's handler makes the window durable downstream (publish confirmed,
or commit), and only then is each channel acked up to its last delivery (see `dedup.rabbitmq.window` for the fence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelLockedResource, ChannelNotFoundEntity

from dedup.rabbitmq.broker import BROKER_ERRORS, Sender
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.partitions import Assignment, Takeover
from dedup.rabbitmq.topology import Stream, Topology, declare, queue_counts, queue_exists, ready_messages
from dedup.rabbitmq.window import Delivery, Window
from normalizers.schema import Unavailable

logger = logging.getLogger(__name__)


Handler = Callable[[Window], Awaitable[None]]


@dataclass(frozen=True)
class WorkerConfig:
    stream: Stream  # the stream consumed: ALERTS for dedup, TICKETS for store
    stage: str
    assignment: Assignment
    window_count: int = 200
    window_seconds: float = 0.02
    prefetch: int = 500
    takeover_interval: float = 2.0
    publish_timeout: float = 5.0


class PartitionWorker:
    """The session of a dedup or store worker on one connection: presence, partitions, standby, windows."""

    def __init__(
        self,
        topology: Topology,
        config: WorkerConfig,
        handler: Handler,
        metrics: BrokerMetrics,
        holding: Holding | None = None,
    ) -> None:
        self._topology = topology
        self._config = config
        self._handler = handler
        self._metrics = metrics
        self._holding: Holding = holding if holding is not None else _HoldsNothing()
        self._ready = False

    async def ready(self) -> bool:
        return self._ready

    async def session(self, connection: AbstractConnection, lost: asyncio.Event) -> None:
        config = self._config
        await declare(connection, self._topology)
        sender = await Sender.open(connection, self._metrics, lost, confirm_within=config.publish_timeout)
        await self._claim_presence(connection, lost)
        consumer = _Consumer(
            connection, self._topology, config, self._handler, self._holding, sender, self._metrics, lost
        )
        for p in config.assignment.owned:
            await consumer.subscribe(p)
        logger.info("worker %d/%d consuming partitions %s", *_who(config), list(config.assignment.owned))
        takeover = Takeover(
            config.assignment,
            neighbour_present=lambda i: queue_exists(connection, self._topology.presence(config.stream, i)),
            consumer_count=lambda p: self._consumers(connection, p),
            holds=consumer.holds,
            subscribe=consumer.subscribe,
            release=consumer.release,
        )
        self._ready = True
        tasks = [
            asyncio.create_task(consumer.run(), name="windows"),
            asyncio.create_task(self._stand_by(connection, takeover, consumer), name="standby"),
            asyncio.create_task(lost.wait(), name="lost"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failed window or standby round ends the session with its error
        finally:
            self._ready = False
            self._metrics.partitions.set(0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _claim_presence(self, connection: AbstractConnection, lost: asyncio.Event) -> None:
        """Declare our presence queue; while another live worker has our index, wait as its hot spare."""
        name = self._topology.presence(self._config.stream, self._config.assignment.index)
        while not lost.is_set():
            try:
                async with connection.channel(publisher_confirms=False) as channel:
                    await channel.declare_queue(name, exclusive=True, auto_delete=True)
                return
            except ChannelLockedResource:
                index = self._config.assignment.index
                logger.warning("another worker runs with index %d; standing by until it stops", index)
                await asyncio.sleep(self._config.takeover_interval)
        raise Unavailable("connection lost while claiming the worker index")

    async def _consumers(self, connection: AbstractConnection, partition: int) -> int:
        counts = await queue_counts(connection, self._topology.queue(self._config.stream, partition))
        return counts[1] if counts is not None else 1  # a missing queue: nothing to take over

    async def _stand_by(self, connection: AbstractConnection, takeover: Takeover, consumer: _Consumer) -> None:
        probe: AbstractChannel | None = None  # one channel for the depth checks, not one per queue and round
        while True:
            await asyncio.sleep(self._config.takeover_interval)
            await takeover.check()
            if probe is None or probe.is_closed:
                probe = await connection.channel(publisher_confirms=False)
            names = [self._topology.queue(self._config.stream, p) for p in consumer.held()]
            try:
                self._metrics.queue_depth.set(await ready_messages(probe, names))
            except (ChannelNotFoundEntity, ChannelLockedResource):  # a queue went away: the broker closed the probe
                probe = None


class Holding(Protocol):
    """A stage that keeps some deliveries' content back (dedup's hold): they are acked only once it lets go."""

    def holds(self, delivery: Delivery) -> bool: ...

    def due_in(self) -> float | None:
        """Seconds until the stage wants a window even if nothing arrives (None: not before the next arrival)."""
        ...


class _HoldsNothing:
    def holds(self, delivery: Delivery) -> bool:
        return False

    def due_in(self) -> float | None:
        return None


def _who(config: WorkerConfig) -> tuple[int, int]:
    return config.assignment.index, config.assignment.count


class _Consumer:
    """The held partitions' channels, the window they fill, and each channel's deliveries not acked yet."""

    def __init__(
        self,
        connection: AbstractConnection,
        topology: Topology,
        config: WorkerConfig,
        handler: Handler,
        holding: Holding,
        sender: Sender,
        metrics: BrokerMetrics,
        lost: asyncio.Event,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._config = config
        self._handler = handler
        self._holding = holding
        self._sender = sender
        self._metrics = metrics
        self._lost = lost
        self._channels: dict[int, AbstractChannel] = {}
        self._pending: list[Delivery] = []
        self._unacked: dict[int, deque[Delivery]] = {}  # id(channel) -> handled deliveries, in tag order
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()

    def holds(self, partition: int) -> bool:
        return partition in self._channels

    def held(self) -> list[int]:
        return sorted(self._channels)

    async def subscribe(self, partition: int) -> None:
        try:
            channel = await self._connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=self._config.prefetch)
            queue = await channel.get_queue(self._topology.queue(self._config.stream, partition), ensure=False)
        except BROKER_ERRORS as exc:
            raise Unavailable(f"cannot subscribe to partition {partition}: {exc}") from None

        def closed(*_: object) -> None:
            if self._channels.get(partition) is channel:  # not let go on purpose: the session is broken
                logger.warning("the broker closed the channel of partition %d", partition)
                self._lost.set()

        async def on_message(message: AbstractIncomingMessage) -> None:
            self._pending.append(Delivery(partition, channel, message))
            self._arrived.set()
            if len(self._pending) >= self._config.window_count:
                self._full.set()

        channel.close_callbacks.add(closed)
        self._channels[partition] = channel
        await queue.consume(on_message)
        self._metrics.partitions.set(len(self._channels))

    async def release(self, partition: int) -> None:
        """Let go of a partition: its unacked messages go back to the queue, in order, for the next consumer."""
        channel = self._channels.pop(partition, None)
        self._metrics.partitions.set(len(self._channels))
        if channel is not None:
            with contextlib.suppress(*BROKER_ERRORS, RuntimeError):
                await channel.close()
            self._unacked.pop(id(channel), None)
        self._pending = [d for d in self._pending if d.channel is not channel]

    async def run(self) -> None:
        """Forever: wait for a first delivery (or a hold coming due), give the window its time or count, hand it
        to the stage, ack what it no longer holds."""
        while True:
            due = self._holding.due_in()
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancellation
                async with asyncio.timeout(due):
                    await self._arrived.wait()
            if self._arrived.is_set() and self._config.window_seconds > 0 and not self._full.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.window_seconds):
                        await self._full.wait()
            batch, self._pending = self._pending, []
            self._arrived.clear()
            self._full.clear()
            await self._flush(Window(batch, self._sender))

    async def _flush(self, window: Window) -> None:
        self._metrics.received.inc(len(window.deliveries))
        await self._handler(window)
        for delivery in window.deliveries:
            if delivery.live:  # deliveries of one channel arrive in tag order
                self._unacked.setdefault(id(delivery.channel), deque()).append(delivery)
            else:
                self._metrics.fenced.inc()
        for key, unacked in list(self._unacked.items()):
            last = None
            while unacked and not self._holding.holds(unacked[0]):
                last = unacked.popleft()
            if not unacked:
                del self._unacked[key]
            if last is None:
                continue
            try:  # up to the oldest delivery still held: `multiple` never acks a held one
                await last.message.ack(multiple=True)
            except (*BROKER_ERRORS, RuntimeError) as exc:  # redelivered to the next consumer; applied once anyway
                logger.info("could not ack partition %d (%s)", last.partition, exc.__class__.__name__)
