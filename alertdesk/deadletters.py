"""`alertdesk dead-letters list` and `alertdesk dead-letters replay [--id …]` (distributed mode).

Dead letters are messages a stage could never process: an alert or command it cannot decode, a command the
store cannot apply (with the database's reason), or — counted by the broker — a message delivered more times
than the delivery limit. They wait in `<prefix>.dead-letters` with the reason in `x-alertdesk-reason` (or the
broker's `x-death`). Listing reads them without taking them (they go back to the queue, in order). Replaying
publishes a message again, confirmed, to the exchange and partition it first came through, then removes it: do
it once the cause is fixed. A replayed alert that was in fact applied before is applied once anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity
from prometheus_client import CollectorRegistry

from alertdesk.settings import Settings
from dedup.rabbitmq.broker import REASON_HEADER, STAGE_HEADER, Broker, Sender
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.topology import Topology, partition_count
from dedup.rabbitmq.window import EXCHANGE_HEADER
from normalizers.schema import AlertdeskError

logger = logging.getLogger(__name__)

REPLAYED_HEADER = "x-alertdesk-replayed"
_DROPPED_ON_REPLAY = {REASON_HEADER, STAGE_HEADER, EXCHANGE_HEADER, "x-death", "x-first-death-exchange",
                      "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
                      "x-last-death-reason", "x-delivery-count"}  # fmt: skip


class NoBroker(AlertdeskError):
    """`dead-letters` needs ALERTDESK_BROKER_URL."""


async def dead_letters(settings: Settings, action: str, ids: Sequence[str] | None = None) -> int:
    if not settings.broker_url:
        raise NoBroker("`alertdesk dead-letters` needs ALERTDESK_BROKER_URL")
    metrics = BrokerMetrics(CollectorRegistry(), "dead-letters")
    connection = await Broker(settings.broker_url, name="alertdesk dead-letters", metrics=metrics).connect_once()
    async with connection:
        partitions = await partition_count(connection, settings.broker_prefix, settings.partitions)
        topology = Topology(settings.broker_prefix, partitions)
        channel = await connection.channel(publisher_confirms=False)
        try:
            queue = await channel.declare_queue(topology.dead_letters, passive=True)
        except ChannelNotFoundEntity:
            print(f"no dead-letter queue {topology.dead_letters!r}: the topology was never declared")
            return 0
        letters: list[AbstractIncomingMessage] = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            letters.append(message)
        if action == "list":
            _print(letters, topology)
            return 0  # closing the channel puts every letter back, in order
        sender = await Sender.open(connection, metrics, asyncio.Event(), confirm_within=settings.publish_timeout)
        return await _replay(letters, set(ids or ()), topology, sender)


def _print(letters: list[AbstractIncomingMessage], topology: Topology) -> None:
    for message in letters:
        exchange, partition = _origin(message)
        stream = topology.stream_of(exchange) if exchange else None
        where = f"{stream.value}/{partition}" if stream else "?"
        print(f"{message.message_id}\t{_stage(message)}\t{where}\t{_reason(message)}")
    print(f"{len(letters)} dead letter(s) in {topology.dead_letters}")


async def _replay(letters: list[AbstractIncomingMessage], ids: set[str], topology: Topology, sender: Sender) -> int:
    replayed = failed = 0
    for message in letters:
        if ids and message.message_id not in ids:
            continue
        exchange, routing_key = _origin(message)
        stream = topology.stream_of(exchange) if exchange else None
        if stream is None:
            print(f"{message.message_id}: not replayed, it did not come from an alertdesk exchange ({exchange!r})")
            failed += 1
            continue
        headers = {k: v for k, v in (message.headers or {}).items() if k not in _DROPPED_ON_REPLAY}
        headers[REPLAYED_HEADER] = int(str(headers.get(REPLAYED_HEADER, 0))) + 1
        again = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            headers=headers,
        )
        await sender.send(topology.exchange(stream), routing_key, again)
        await message.ack()
        replayed += 1
        print(f"{message.message_id}: replayed to {topology.exchange(stream)} partition {routing_key}")
    missing = ids - {m.message_id for m in letters if m.message_id}
    for message_id in sorted(missing):
        print(f"{message_id}: no such dead letter")
    print(f"{replayed} replayed, {len(letters) - replayed} left in {topology.dead_letters}")
    return 1 if failed or missing else 0


def _origin(message: AbstractIncomingMessage) -> tuple[str | None, str]:
    """(exchange, routing key) the message first came through: our header, or the broker's `x-death` record."""
    headers = message.headers or {}
    if EXCHANGE_HEADER in headers:
        return _text(headers[EXCHANGE_HEADER]), message.routing_key or ""
    death = _first_death(headers)
    if death is not None:
        keys = death.get("routing-keys") or [message.routing_key or ""]
        return _text(death.get("exchange")), _text(keys[0])
    return None, message.routing_key or ""


def _stage(message: AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    return _text(headers.get(STAGE_HEADER)) or "broker"


def _reason(message: AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    if REASON_HEADER in headers:
        return _text(headers[REASON_HEADER])
    death = _first_death(headers)
    if death is not None:
        return f"{_text(death.get('reason'))} (queue {_text(death.get('queue'))}, {death.get('count', '?')} time(s))"
    return "unknown"


def _first_death(headers: dict[str, Any]) -> dict[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return None


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
