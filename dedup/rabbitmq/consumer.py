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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelLockedResource, ChannelNotFoundEntity

from dedup.rabbitmq.broker import BROKER_ERRORS, COUNT_HEADER, Sender
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
    # Storm mode: above `storm_rate` alerts/s (a batch message counts its alerts) the window holds for `storm_seconds` (bounded by the prefetch),
    # so each key's repeats fold into one command per window and the store writes each ticket once per window.
    storm_rate: float = 0.0  # 0: never
    storm_seconds: float = 10.0
    takeover_interval: float = 2.0
    publish_timeout: float = 5.0


class PartitionWorker:
    """The session of a dedup or store worker on one connection: presence, partitions, standby, windows."""

    def __init__(self, topology: Topology, config: WorkerConfig, handler: Handler, metrics: BrokerMetrics) -> None:
        self._topology = topology
        self._config = config
        self._handler = handler
        self._metrics = metrics
        self._ready = False

    async def ready(self) -> bool:
        return self._ready

    async def session(self, connection: AbstractConnection, lost: asyncio.Event) -> None:
        config = self._config
        await declare(connection, self._topology)
        sender = await Sender.open(connection, self._metrics, lost, confirm_within=config.publish_timeout)
        await self._claim_presence(connection, lost)
        consumer = _Consumer(connection, self._topology, config, self._handler, sender, self._metrics, lost)
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


STORM_PAUSE = 0.5  # seconds without an arrival that end a storm window early


class StormGauge:
    """The delivery rate, smoothed over about a second; a storm while it stays above the threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.rate = 0.0
        self.storm = False

    def observe(self, count: int, seconds: float) -> None:
        if not self.threshold or seconds <= 0:
            return
        weight = min(seconds, 1.0)  # a long window counts fully, a 20 ms one for 2%
        self.rate += weight * (count / seconds - self.rate)
        # hysteresis: leave the storm only well below the threshold, so a storm does not flap in and out
        self.storm = self.rate >= self.threshold if not self.storm else self.rate >= self.threshold / 2


def alerts_in(message: AbstractIncomingMessage) -> int:
    """How many alerts a message carries (a batch from ingest's group publish says so), without decoding it."""
    count = (message.headers or {}).get(COUNT_HEADER, 1)
    return count if isinstance(count, int) and count > 0 else 1


def _who(config: WorkerConfig) -> tuple[int, int]:
    return config.assignment.index, config.assignment.count


class _Consumer:
    """The held partitions' channels and the window they fill."""

    def __init__(
        self,
        connection: AbstractConnection,
        topology: Topology,
        config: WorkerConfig,
        handler: Handler,
        sender: Sender,
        metrics: BrokerMetrics,
        lost: asyncio.Event,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._config = config
        self._handler = handler
        self._sender = sender
        self._metrics = metrics
        self._lost = lost
        self._channels: dict[int, AbstractChannel] = {}
        self._pending: list[Delivery] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._limit = config.window_count
        self._rate = StormGauge(config.storm_rate)
        self._arrivals = 0  # alerts delivered since the rate was last observed

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
            self._arrivals += alerts_in(message)
            self._arrived.set()
            if len(self._pending) >= self._limit:
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
        self._pending = [d for d in self._pending if d.channel is not channel]

    async def run(self) -> None:
        """Forever: wait for a first delivery, give the window its time or count, hand it to the stage, ack."""
        loop = asyncio.get_running_loop()
        observed = loop.time()
        while True:
            await self._arrived.wait()
            storm = self._rate.storm
            seconds = self._config.storm_seconds if storm else self._config.window_seconds
            # a storm window ends when the prefetch of every held partition is used up: no more can arrive
            self._limit = self._config.prefetch * max(len(self._channels), 1) if storm else self._config.window_count
            if len(self._pending) >= self._limit:
                self._full.set()
            if storm:
                await self._hold(seconds)
            elif seconds > 0 and not self._full.is_set():
                with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancellation
                    async with asyncio.timeout(seconds):
                        await self._full.wait()
            batch, self._pending = self._pending, []
            self._arrived.clear()
            self._full.clear()
            now = loop.time()
            self._rate.observe(self._arrivals, now - observed)  # arrivals over wall time, idle gaps included
            self._arrivals, observed = 0, now
            if self._rate.storm != storm:
                logger.warning(
                    "alert storm %s (%.0f alerts/s)", "begins" if self._rate.storm else "is over", self._rate.rate
                )
            if batch:
                await self._flush(Window(batch, self._sender))

    async def _hold(self, seconds: float) -> None:
        """A storm window: until full, `seconds` passed, or a pause in arrivals (the storm is over: don't sit on it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._full.is_set() and (left := deadline - loop.time()) > 0:
            before = self._arrivals
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, STORM_PAUSE)):
                    await self._full.wait()
            if self._arrivals == before:
                return

    async def _flush(self, window: Window) -> None:
        self._metrics.received.inc(len(window.deliveries))
        await self._handler(window)
        last: dict[int, Delivery] = {}
        for delivery in window.deliveries:
            if delivery.live:
                last[id(delivery.channel)] = delivery  # deliveries of one channel arrive in tag order
            else:
                self._metrics.fenced.inc()
        for delivery in last.values():
            try:
                await delivery.message.ack(multiple=True)
            except (*BROKER_ERRORS, RuntimeError) as exc:  # redelivered to the next consumer; applied once anyway
                logger.info("could not ack partition %d (%s)", delivery.partition, exc.__class__.__name__)
