"""The one seam between the webhook edge and the rest of the pipeline."""

from __future__ import annotations

from typing import Protocol

from normalizers.schema import Alert


class Publisher(Protocol):
    """Hands an alert to the next stage (RabbitMQ in distributed mode, the embedded store otherwise).

    Ingest answers 202 only after `publish` returns, so it must return only once the alert is durable: confirmed
    by the broker, or committed. When it cannot take the alert now, or cannot confirm it in bounded time, it
    raises `normalizers.schema.Unavailable`; ingest answers 503 with `Retry-After` and the sender retries. The
    exception's message is shown to the sender, so it must not carry credentials (e.g. a broker URL).
    """

    async def publish(self, alert: Alert) -> None: ...
