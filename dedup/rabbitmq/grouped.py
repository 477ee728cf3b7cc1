"""Ingest's `Publisher` on RabbitMQ, with group publish: concurrent requests share one confirmed message per partition.

A request queues its alert, in its partition's queue, and waits. One task per partition takes everything that
queued there while that partition's previous message was in flight, publishes it as one message (or several, at
most `max_alerts` alerts and `max_bytes` bytes each) and waits for the confirm; each request is answered with its
own message's outcome. Partitions do not wait for each other: a slow confirm delays only its own partition. A
partition's rounds start at least `linger` apart (5 ms by default): an alert after a pause goes at once, as a
single-alert message (the format every dedup version reads), but at moderate load, where a confirm comes back in
a millisecond or two, back-to-back rounds would make each message carry an alert or two, and every message costs
ingest, the broker and dedup (at half the full rate, 2× the CPU per alert of full rate). Under full load a round
outlasts the linger, which then changes nothing. A message of several alerts is a JSON array with an
`x-alertdesk-alerts` count.
A nack, a return, no confirm in time or a lost connection fails every request of that message with
`Unavailable` (ingest answers 503); their retries carry the same alert ids, so they count once downstream.

A 503 means "not published" wherever it can: a request still queued when its time is up (`timeout` from its
arrival) is withdrawn from the queue, and a full queue (`max_pending` alerts) refuses at once. Only an alert inside
the message in flight may still be confirmed after its 503 — the sender's retry with the same Idempotency-Key
counts it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractConnection

from dedup.rabbitmq.broker import COUNT_HEADER, Sender, json_message
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.partitions import partition_of
from dedup.rabbitmq.topology import Stream, Topology, declare
from normalizers.schema import Alert, Unavailable

MAX_ALERTS = 256  # per message: bounds a dedup window's size in alerts and a dead letter's blast radius
MAX_BYTES = 256 * 1024  # per message; one alert over it still travels, alone
MARGIN = 0.05  # seconds: a request with less time left than this is not sent (its 503 says "not published")


@dataclass(frozen=True, eq=False)
class Waiting:
    """A request's alert, serialized once, and the future that answers it."""

    alert: Alert
    body: bytes
    answer: asyncio.Future[None]
    deadline: float = float("inf")  # the event loop's clock: when the request answers 503 whatever happens


def group(
    waiting: Sequence[Waiting], partition: Callable[[Alert], int], *, max_alerts: int, max_bytes: int
) -> list[tuple[int, list[Waiting]]]:
    """Split a round into messages: per partition in arrival order, a new message when one is full."""
    messages: list[tuple[int, list[Waiting]]] = []
    current: dict[int, list[Waiting]] = {}  # partition -> its message still taking alerts
    size: dict[int, int] = {}
    for w in waiting:
        p = partition(w.alert)
        batch = current.get(p)
        if batch is None or len(batch) >= max_alerts or size[p] + len(w.body) > max_bytes:
            batch = current[p] = []
            size[p] = 0
            messages.append((p, batch))
        batch.append(w)
        size[p] += len(w.body) + 1
    return messages


def message_of(waiting: Sequence[Waiting]) -> aio_pika.Message:
    """One alert: the single-alert message named after it. Several: a JSON array named after the first."""
    if len(waiting) == 1:
        return json_message(waiting[0].body, waiting[0].alert.id)
    message = json_message(b"[" + b",".join(w.body for w in waiting) + b"]", waiting[0].alert.id)
    assert message.headers is not None
    message.headers[COUNT_HEADER] = len(waiting)
    return message


class AmqpPublisher:
    """Ingest's `Publisher`: an alert is durable once RabbitMQ confirmed the message carrying it."""

    def __init__(
        self,
        topology: Topology,
        metrics: BrokerMetrics,
        *,
        timeout: float,
        max_alerts: int = MAX_ALERTS,
        max_bytes: int = MAX_BYTES,
        max_pending: int = 2048,
        linger: float = 0.0,
    ) -> None:
        """`linger`: seconds between the starts of a partition's rounds, at least (0: as soon as one confirmed)."""
        self._topology = topology
        self._linger = linger
        self._metrics = metrics
        self._timeout = timeout
        self._max_pending = max_pending
        self._max_alerts = max_alerts
        self._max_bytes = max_bytes
        self._exchange = topology.exchange(Stream.ALERTS)
        self._sender: Sender | None = None
        self._queued: list[list[Waiting]] = [[] for _ in range(topology.partitions)]  # per partition
        self._wake = [asyncio.Event() for _ in range(topology.partitions)]

    async def session(self, connection: AbstractConnection, lost: asyncio.Event) -> None:
        """`Broker.run` calls this on each new connection: declare the topology, publish until the connection dies."""
        await declare(connection, self._topology)
        sender = await Sender.open(connection, self._metrics, lost, confirm_within=self._timeout)
        rounds = [
            asyncio.create_task(self._rounds(sender, p), name=f"publish rounds {p}")
            for p in range(self._topology.partitions)
        ]
        self._sender = sender
        try:
            await lost.wait()
        finally:
            self._sender = None
            for task in rounds:
                task.cancel()
            await asyncio.gather(*rounds, return_exceptions=True)
            for p, queued in enumerate(self._queued):
                self._queued[p] = []
                _fail(queued, Unavailable("lost the connection to the message broker"))

    async def publish(self, alert: Alert) -> None:
        if self._sender is None or not self._sender.is_open:
            raise Unavailable("not connected to the message broker")
        if sum(map(len, self._queued)) >= self._max_pending:
            raise Unavailable(f"ingest is overloaded ({self._max_pending} alerts waiting for the broker); retry later")
        loop = asyncio.get_running_loop()
        waiting = Waiting(alert, alert.model_dump_json().encode(), loop.create_future(), loop.time() + self._timeout)
        partition = partition_of(alert.dedup_key, self._topology.partitions)
        queue = self._queued[partition]
        queue.append(waiting)
        self._wake[partition].set()
        # a timer that fails the answer, not `asyncio.timeout` (~3% of ingest's CPU in a py-spy profile); a round
        # sending the alert later answers no one, as it skips answers already done
        timer = loop.call_later(self._timeout, _expire, waiting.answer)
        try:
            await waiting.answer
        except TimeoutError:
            if waiting in queue and queue is self._queued[partition]:  # not taken by a round yet: withdrawn
                queue.remove(waiting)
                raise Unavailable(
                    f"the message broker did not take the alert within {self._timeout:g}s; not published"
                ) from None
            raise Unavailable(
                f"the message broker did not confirm within {self._timeout:g}s; the alert may still be published: "
                "retry with the same Idempotency-Key"
            ) from None
        finally:
            timer.cancel()

    async def ready(self) -> bool:
        sender = self._sender
        return sender is not None and sender.is_open

    async def _rounds(self, sender: Sender, partition: int) -> None:
        """One partition's rounds: a request waits for its own partition's confirm, never for the slowest of all."""
        loop = asyncio.get_running_loop()
        started = -self._linger
        while True:
            await self._wake[partition].wait()
            if (wait := started + self._linger - loop.time()) > 0:
                await asyncio.sleep(wait)  # the alerts arriving meanwhile join this round
            self._wake[partition].clear()
            taken, self._queued[partition] = self._queued[partition], []
            now = started = loop.time()
            late = [w for w in taken if w.deadline - now < MARGIN]  # their requests are answering 503 now
            _fail(
                late, Unavailable(f"the message broker did not take the alert within {self._timeout:g}s; not published")
            )
            taken = [w for w in taken if not w.answer.done()]
            messages = group(taken, lambda _: partition, max_alerts=self._max_alerts, max_bytes=self._max_bytes)
            try:
                await asyncio.gather(*(self._send(sender, partition, batch) for _, batch in messages))
            finally:  # cancelled with the session: whatever is unanswered was not confirmed
                _fail(taken, Unavailable("lost the connection to the message broker"))

    async def _send(self, sender: Sender, partition: int, batch: list[Waiting]) -> None:
        """A message never outlives its requests: its confirm is awaited until the earliest of their deadlines."""
        within = min(w.deadline for w in batch) - asyncio.get_running_loop().time()
        try:
            await sender.send(self._exchange, str(partition), message_of(batch), within=within)
        except Unavailable as exc:
            _fail(batch, exc)
            return
        for w in batch:
            if not w.answer.done():  # a request whose client went away has its future cancelled
                w.answer.set_result(None)


def _expire(answer: asyncio.Future[None]) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())
        answer.exception()  # retrieved: if its request went away meanwhile, asyncio must not log it


def _fail(waiting: Sequence[Waiting], exc: Unavailable) -> None:
    for w in waiting:
        if not w.answer.done():
            w.answer.set_exception(exc)
