"""RabbitMQ for alertdesk: one supervised connection per process, and publishing that means "durable".

`Broker.run` keeps one connection at a time: it connects with backoff (tenacity, forever), runs the stage's
session on it until the connection or one of its channels dies, then starts over on a fresh connection. A new
session is a clean slate, which is what fences work begun on a dead channel.

`Sender.send` publishes persistent, mandatory messages on a confirm-mode channel and returns only once the broker
confirmed them; an unroutable message, a nack, no confirm in time or a cut connection all raise `Unavailable`
(aio-pika's errors do not leave this module). `grouped.AmqpPublisher` is ingest's `Publisher` on top of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq.exceptions import AMQPError, DeliveryError, PublishError
from pamqp.common import FieldTable
from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.topology import close_quietly
from normalizers.schema import SCHEMA_VERSION, AlertdeskError, Unavailable

logger = logging.getLogger(__name__)

SCHEMA_HEADER = "x-alertdesk-schema"
REASON_HEADER = "x-alertdesk-reason"
STAGE_HEADER = "x-alertdesk-stage"
COUNT_HEADER = "x-alertdesk-alerts"  # on a message carrying several alerts (a JSON array): how many
# on a tickets message: how many of its first commands are only held repeats (their lag is not alert→ticket)
REPEATS_HEADER = "x-alertdesk-repeats"

# What a broken or unreachable broker raises through aio-pika/aiormq.
BROKER_ERRORS = (AMQPError, ConnectionError, OSError, TimeoutError)

Session = Callable[[AbstractConnection, asyncio.Event], Awaitable[None]]


def encode(model: BaseModel, message_id: str) -> aio_pika.Message:
    """JSON (never pickle), persistent, with the id the consumer deduplicates on and the schema version."""
    return json_message(model.model_dump_json().encode(), message_id)


def encode_all(models: Sequence[BaseModel], message_id: str) -> aio_pika.Message:
    """Several models as one JSON array: a window's commands for one partition travel as one message."""
    return json_message(b"[" + b",".join(m.model_dump_json().encode() for m in models) + b"]", message_id)


def json_message(body: bytes, message_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        headers={SCHEMA_HEADER: SCHEMA_VERSION},
    )


def _setting(event: asyncio.Event) -> Callable[..., None]:
    """A close callback that sets `event`."""
    return lambda *_: event.set()


class Broker:
    """Keeps one connection to RabbitMQ alive for a stage and runs the stage's session on each one."""

    def __init__(self, url: str, *, name: str, metrics: BrokerMetrics, max_backoff: float = 5.0) -> None:
        self._url = url
        self._name = name
        self._metrics = metrics
        self._max_backoff = max_backoff

    async def run(self, session: Session) -> None:
        """Forever: connect, run `session(connection, lost)` until `lost` is set or it raises, reconnect.

        Broker errors and `Unavailable` end a session and start the next; any other error (a topology
        mismatch) ends the process, because retrying cannot fix it.
        """
        while True:
            connection = await self._connect()
            lost = asyncio.Event()
            connection.close_callbacks.add(_setting(lost))
            self._metrics.connected.set(1)
            try:
                await session(connection, lost)
                logger.warning("lost the broker connection; reconnecting")
            except (Unavailable, *BROKER_ERRORS) as exc:
                logger.warning("broker session ended (%s: %s); reconnecting", exc.__class__.__name__, exc)
            except AlertdeskError:
                raise  # a mismatch the CLI reports in one line, exit code 2
            except Exception:
                logger.exception("the %s stage failed; stopping", self._name)  # said here, before the close
                raise
            finally:
                self._metrics.connected.set(0)
                await close_quietly(connection)
            await asyncio.sleep(0.1)

    async def connect_once(self) -> AbstractConnection:
        """A single plain connection (CLI commands); raises `Unavailable` if the broker cannot be reached."""
        try:
            return await self._open()
        except BROKER_ERRORS as exc:
            raise Unavailable(f"cannot reach the message broker: {exc.__class__.__name__}") from None

    async def _connect(self) -> AbstractConnection:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(BROKER_ERRORS),
            wait=wait_random_exponential(multiplier=0.2, max=self._max_backoff),
            before_sleep=self._log_retry,
        ):
            with attempt:
                connection = await self._open()
                logger.info("connected to the message broker as %r", self._name)
                return connection
        raise AssertionError("unreachable: tenacity retries forever")

    async def _open(self) -> AbstractConnection:
        properties: FieldTable = {"connection_name": self._name}
        return await aio_pika.connect(self._url, timeout=5.0, client_properties=properties)

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.warning("message broker unreachable (%s); retry %d", exc.__class__.__name__, state.attempt_number)


class Sender:
    """Confirmed publishing on one channel opened with publisher confirms and `on_return_raises`."""

    def __init__(self, channel: AbstractChannel, metrics: BrokerMetrics, *, timeout: float) -> None:
        self._channel = channel
        self._metrics = metrics
        self._timeout = timeout
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    async def open(
        cls, connection: AbstractConnection, metrics: BrokerMetrics, lost: asyncio.Event, *, confirm_within: float
    ) -> Sender:
        """A sender on a new channel; the session is over (`lost`) if the broker closes that channel."""
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except BROKER_ERRORS as exc:
            raise Unavailable(f"cannot open a channel: {exc.__class__.__name__}") from None
        channel.close_callbacks.add(_setting(lost))
        return cls(channel, metrics, timeout=confirm_within)

    @property
    def is_open(self) -> bool:
        return not self._channel.is_closed

    async def send(
        self, exchange: str, routing_key: str, message: aio_pika.Message, *, within: float | None = None
    ) -> None:
        """Return once the broker confirmed `message` routed to a queue; otherwise raise `Unavailable`.

        `within`: a shorter wait for the confirm than the sender's own (the requests it answers have less left)."""
        started = time.perf_counter()
        timeout = self._timeout if within is None else min(within, self._timeout)
        try:
            target = self._exchanges.get(exchange)
            if target is None:
                target = self._exchanges[exchange] = await self._channel.get_exchange(exchange, ensure=False)
            await target.publish(message, routing_key, mandatory=True, timeout=timeout)
        except PublishError:
            self._metrics.publish_failures.inc()
            raise Unavailable(
                f"no queue is bound to {exchange} for {routing_key!r}: is the topology declared?"
            ) from None
        except DeliveryError:
            self._metrics.publish_failures.inc()
            raise Unavailable("the message broker refused the message (nack)") from None
        except TimeoutError:
            self._metrics.publish_failures.inc()
            raise Unavailable(f"the message broker did not confirm within {timeout:g}s") from None
        except (*BROKER_ERRORS, RuntimeError) as exc:
            self._metrics.publish_failures.inc()
            raise Unavailable(f"the message broker connection is down ({exc.__class__.__name__})") from None
        self._metrics.published.inc()
        self._metrics.confirm_seconds.observe(time.perf_counter() - started)
