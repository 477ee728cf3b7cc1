"""The dedup worker: a window of alerts from the partitions it holds → folded ticket commands, confirmed downstream.

Per window: decode each alert (a message carries one alert, or a JSON array of them from ingest's group publish;
an alert of an array that can never be read is dead-lettered alone), let the hold (`dedup.hold`) keep back the
plain repeats and release what is due, fold (the same pure `fold` as the embedded mode: the released repeats
first, then the news, so each key keeps its order), publish the commands of each partition, in order, as one
message to the same partition of the tickets stream (header `x-alertdesk-repeats`: how many of its first commands
are released repeats), wait for the broker's confirms; the consumer then acks each delivery none of whose alerts
is still held. A message that can never be an alert goes to the dead-letter exchange with its reason, then is
acked. A transient failure (publish refused, no confirm in time) retries the window in-process; the inputs are
never requeued. If the retry republishes a command the broker had in fact taken, the store applies its alert ids
once anyway.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Callable
from datetime import datetime

from pydantic import TypeAdapter

from dedup.fold import fold
from dedup.hold import Hold, Release
from dedup.metrics import DedupMetrics
from dedup.rabbitmq.broker import REPEATS_HEADER, encode_all
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.partitions import partition_of
from dedup.rabbitmq.topology import Stream, Topology
from dedup.rabbitmq.window import Delivery, Unreadable, Window, dead_letter, decode_each, until_done
from normalizers.schema import Alert, TicketCommand

STAGE = "dedup"
ALERT = TypeAdapter(Alert)
ALERTS = TypeAdapter(list[Alert])


class DedupStage:
    """The handler `PartitionWorker` calls with each window of the alerts stream (an empty one when a hold is due)."""

    def __init__(
        self,
        topology: Topology,
        dedup_metrics: DedupMetrics,
        metrics: BrokerMetrics,
        *,
        now: Callable[[], datetime],
        hold: Hold | None = None,  # None: every alert leaves in its own window
    ) -> None:
        self._topology = topology
        self._dedup_metrics = dedup_metrics
        self._metrics = metrics
        self._now = now
        self._exchange = topology.exchange(Stream.TICKETS)
        self.hold = hold

    async def __call__(self, window: Window) -> None:
        decoded = {id(d): decode_each(d.message, ALERT, ALERTS) for d in window.deliveries}
        arrived = [(d, a) for d in window.live() for a in decoded[id(d)] if isinstance(a, Alert)]
        release = self.hold.take(arrived) if self.hold is not None else Release([], arrived)
        involved = {id(d): d for d, _ in (*release.repeats, *arrived)}  # the window's and the released ones'
        published: list[tuple[list[Alert], list[TicketCommand]]] = []

        async def publish(live: list[Delivery]) -> None:
            nonlocal published
            alive = {id(d) for d in live}
            repeats = [a for d, a in release.repeats if id(d) in alive]
            news = [a for d, a in release.news if id(d) in alive]
            published = [(repeats, fold(repeats)), (news, fold(news))]
            by_partition: dict[int, list[TicketCommand]] = {}
            repeated: Tally[int] = Tally()
            for (_, commands), held in zip(published, (True, False), strict=True):
                for command in commands:
                    partition = partition_of(command.dedup_key, self._topology.partitions)
                    by_partition.setdefault(partition, []).append(command)
                    repeated[partition] += held
            await asyncio.gather(*(self._send(window, p, batch, repeated[p]) for p, batch in by_partition.items()))

        async def reject(live: list[Delivery]) -> None:
            for d in live:
                for bad in (item for item in decoded[id(d)] if isinstance(item, Unreadable)):
                    # alone: a poison alert never takes its batch neighbours along
                    await dead_letter(
                        window.sender, self._topology, d, bad.reason, STAGE, body=bad.body, message_id=bad.message_id
                    )

        if involved:
            taken = Window(list(involved.values()), window.sender)
            await until_done(taken, publish, self._metrics, "publishing ticket commands")
        done = await until_done(window, reject, self._metrics, "dead-lettering invalid alerts")
        unreadable = sum(isinstance(item, Unreadable) for d in done for item in decoded[id(d)])
        self._count(published, unreadable)

    async def _send(self, window: Window, partition: int, batch: list[TicketCommand], repeated: int) -> None:
        message = encode_all(batch, batch[0].alert.id)
        if repeated and message.headers is not None:
            message.headers[REPEATS_HEADER] = repeated
        await window.sender.send(self._exchange, str(partition), message)

    def _count(self, published: list[tuple[list[Alert], list[TicketCommand]]], unreadable: int) -> None:
        now = self._now()
        for alerts, commands in published:
            self._dedup_metrics.record(alerts, commands)
        for alert in published[1][0] if published else ():  # the news: a held repeat's wait is not consumer lag
            self._metrics.lag_seconds.observe(max((now - alert.received_at).total_seconds(), 0.0))
        self._metrics.dead_lettered.inc(unreadable)
