"""The dedup worker: a window of alerts from the partitions it holds → folded ticket commands, confirmed downstream.

Per window: decode each alert (a message carries one alert, or a JSON array of them from ingest's group publish;
an alert of an array that can never be read is dead-lettered alone), fold (the same pure `fold` as the embedded
mode), publish the commands of each partition, in order, as one message to the same partition of the tickets
stream (one message per partition and window, not per command: the broker's work on that hop shrinks with the
window), wait for the broker's confirms, and only then ack the alerts. A message that can never be an alert goes
to the dead-letter exchange with its reason, then is acked. A transient failure
(publish refused, no confirm in time) retries the window in-process; the inputs are never requeued. If the
retry republishes a command the broker had in fact taken, the store applies its alert ids once anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from pydantic import TypeAdapter

from dedup.fold import fold
from dedup.metrics import DedupMetrics
from dedup.rabbitmq.broker import encode_all
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.partitions import partition_of
from dedup.rabbitmq.topology import Stream, Topology
from dedup.rabbitmq.window import Delivery, Unreadable, Window, dead_letter, decode_each, until_done
from normalizers.schema import Alert, TicketCommand

STAGE = "dedup"
ALERT = TypeAdapter(Alert)


class DedupStage:
    """The handler `PartitionWorker` calls with each window of the alerts stream."""

    def __init__(
        self,
        topology: Topology,
        dedup_metrics: DedupMetrics,
        metrics: BrokerMetrics,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self._topology = topology
        self._dedup_metrics = dedup_metrics
        self._metrics = metrics
        self._now = now
        self._exchange = topology.exchange(Stream.TICKETS)

    async def __call__(self, window: Window) -> None:
        decoded = {id(d): decode_each(d.message, ALERT) for d in window.deliveries}
        commands: list[TicketCommand] = []

        async def publish(live: list[Delivery]) -> None:
            nonlocal commands
            commands = fold(a for d in live for a in decoded[id(d)] if isinstance(a, Alert))
            by_partition: dict[int, list[TicketCommand]] = {}
            for command in commands:
                by_partition.setdefault(partition_of(command.dedup_key, self._topology.partitions), []).append(command)
            await asyncio.gather(
                *(
                    window.sender.send(self._exchange, str(p), encode_all(batch, batch[0].alert.id))
                    for p, batch in by_partition.items()
                )
            )

        async def reject(live: list[Delivery]) -> None:
            for d in live:
                for bad in (item for item in decoded[id(d)] if isinstance(item, Unreadable)):
                    # alone: a poison alert never takes its batch neighbours along
                    await dead_letter(
                        window.sender, self._topology, d, bad.reason, STAGE, body=bad.body, message_id=bad.message_id
                    )

        done = await until_done(window, publish, self._metrics, "publishing ticket commands")
        await until_done(window, reject, self._metrics, "dead-lettering invalid alerts")
        if done:
            self._count([item for d in done for item in decoded[id(d)]], commands)

    def _count(self, handled: list[Alert | Unreadable], commands: list[TicketCommand]) -> None:
        alerts = [a for a in handled if isinstance(a, Alert)]
        now = self._now()
        self._dedup_metrics.record(alerts, commands)
        for alert in alerts:
            self._metrics.lag_seconds.observe(max((now - alert.received_at).total_seconds(), 0.0))
        self._metrics.dead_lettered.inc(len(handled) - len(alerts))
