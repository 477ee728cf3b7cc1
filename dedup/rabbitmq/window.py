"""A window of deliveries and what a stage does with it: decode, retry while the fence allows, dead-letter.

Fencing: a delivery is acted on only while its channel lives. When a partition is handed back its channel is
closed, which returns its unacked messages, in order, to the queue for the owner; a lost connection ends the
whole session. Either way a window's deliveries from a dead channel are dropped, never published or committed
beside the new active consumer's — they are redelivered to it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import TypeAdapter, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from dedup.rabbitmq.broker import REASON_HEADER, SCHEMA_HEADER, STAGE_HEADER, Sender
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.topology import Topology
from normalizers.schema import SCHEMA_VERSION, Unavailable

logger = logging.getLogger(__name__)

EXCHANGE_HEADER = "x-alertdesk-exchange"  # where a dead letter was first published, for replay

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Delivery:
    partition: int
    channel: AbstractChannel
    message: AbstractIncomingMessage

    @property
    def live(self) -> bool:
        return not self.channel.is_closed


@dataclass(frozen=True, eq=False)
class Window:
    """Deliveries taken together, and the sender to hand their results on with."""

    deliveries: list[Delivery]
    sender: Sender

    def live(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.live]


@dataclass(frozen=True)
class Unreadable:
    """A message, or one item of a batch message, that can never be read, and why (its dead-letter reason)."""

    reason: str
    body: bytes | None = None  # the item alone, when it came in a batch; None: the whole message
    message_id: str | None = None


def decode(message: AbstractIncomingMessage, shape: TypeAdapter[T]) -> T | Unreadable:
    """The message's content, or why it can never be read."""
    header = decode_header(message)
    if header is not None:
        return header
    try:
        return shape.validate_json(message.body)
    except ValidationError as exc:
        return Unreadable(_reason(shape, exc))


def decode_header(message: AbstractIncomingMessage) -> Unreadable | None:
    """Why the message's content type or schema version rule out reading it, if they do."""
    if message.content_type != "application/json":
        return Unreadable(f"content type {message.content_type!r} is not application/json")
    version = (message.headers or {}).get(SCHEMA_HEADER, SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return Unreadable(f"schema version {version!r} is not one this alertdesk reads (up to {SCHEMA_VERSION})")
    return None


def _reason(shape: TypeAdapter[T], exc: ValidationError) -> str:
    errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
    return f"not valid {shape}: {errors}"[:1000]


def decode_each(
    message: AbstractIncomingMessage, shape: TypeAdapter[T], many: TypeAdapter[list[T]]
) -> list[T | Unreadable]:
    """The items of a message: a JSON array is a batch, each item read on its own (an unreadable one never
    refuses its neighbours); anything else is one item, as in the single-alert messages of earlier versions.

    `many` reads a whole array in one pass (pydantic-core's JSON parser, several times cheaper than json.loads then
    one validation per item); only an array with an unreadable item is read again item by item."""
    if message.body[:1] != b"[":
        return [decode(message, shape)]
    header = decode_header(message)
    if header is not None:
        return [header]
    try:
        return list(many.validate_json(message.body))
    except ValidationError:
        pass
    try:
        items = json.loads(message.body)
    except ValueError as exc:
        return [Unreadable(f"not JSON: {exc}"[:1000])]
    decoded: list[T | Unreadable] = []
    for index, item in enumerate(items):
        result = _item(item, shape, f"{message.message_id}[{index}]")
        decoded.append(result)
    return decoded


def _item(item: object, shape: TypeAdapter[T], position: str) -> T | Unreadable:
    """One item of a batch; an unreadable one keeps its own id if it has one, else its place in the batch."""
    try:
        return shape.validate_python(item)
    except ValidationError as exc:
        item_id = item.get("id") if isinstance(item, dict) else None
        body = json.dumps(item, separators=(",", ":")).encode()
        return Unreadable(_reason(shape, exc), body, item_id if isinstance(item_id, str) else position)


def decode_all(window: Window, shape: TypeAdapter[T]) -> dict[int, T | Unreadable]:
    """Each delivery's content by `id(delivery)`: decoded once, whatever the retries."""
    decoded: dict[int, T | Unreadable] = {}
    for delivery in window.deliveries:
        content = decode(delivery.message, shape)
        decoded[id(delivery)] = content
    return decoded


async def until_done(
    window: Window, action: Callable[[list[Delivery]], Awaitable[None]], metrics: BrokerMetrics, what: str
) -> list[Delivery]:
    """Run `action` on the window's live deliveries until it succeeds, retrying `Unavailable` in-process.

    Returns the deliveries it succeeded on; stops early with none once none is live (the fence).
    """

    def log(state: RetryCallState) -> None:
        metrics.retries.inc()
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.warning("%s failed (%s); retry %d", what, exc, state.attempt_number)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Unavailable),
        wait=wait_random_exponential(multiplier=0.1, max=5.0),
        before_sleep=log,
    ):
        with attempt:
            live = window.live()
            if live:
                await action(live)
    return live


async def dead_letter(
    sender: Sender,
    topology: Topology,
    delivery: Delivery,
    reason: str,
    stage: str,
    *,
    body: bytes | None = None,
    message_id: str | None = None,
) -> None:
    """Publish the message (or the part of it given as `body`) to the dead-letter exchange, with why, where
    from and which stage gave up."""
    message = delivery.message
    headers = {
        **(message.headers or {}),
        REASON_HEADER: reason[:1000],
        STAGE_HEADER: stage,
        EXCHANGE_HEADER: message.exchange or "",
    }
    message_id = message_id or message.message_id
    logger.error("dead-lettering message %s from %s: %s", message_id, message.exchange, reason)
    out = aio_pika.Message(
        message.body if body is None else body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        headers=headers,
    )
    await sender.send(topology.dead_letters, message.routing_key or "", out)
