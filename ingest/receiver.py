"""The webhook routes of CONTRACT §1: authenticate, read and decode, normalize, publish, answer.

The checks run cheapest and least revealing first (unknown source, token, announced size, Content-Type) so a
request that will be refused costs no body read. 202 is sent only once the publisher says the alert is durable.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from aiohttp import hdrs, web

import normalizers
from ingest.auth import is_authorized
from ingest.body import (
    BodyTooLarge,
    MalformedBody,
    UnsupportedMediaType,
    check_declared_size,
    decode_body,
    media_type,
    read_body,
)
from ingest.config import IngestConfig
from ingest.metrics import UNKNOWN_SOURCE, IngestMetrics, Outcome, Reason
from ingest.publisher import Publisher
from ingest.refusals import RefusalLog
from normalizers.schema import Alert, Ignored, InvalidAlert, Source, Unavailable, UnknownSource

logger = logging.getLogger(__name__)

Normalize = Callable[..., Alert | Ignored]

IDEMPOTENCY_KEY = "Idempotency-Key"
_IDEMPOTENCY_KEY_FORMAT = re.compile(r"[\x20-\x7e]{1,255}")
_KNOWN_SOURCES = ", ".join(source.value for source in Source)


def webhook_routes(
    config: IngestConfig,
    publisher: Publisher,
    metrics: IngestMetrics,
    *,
    now: Callable[[], datetime],
    normalize: Normalize = normalizers.normalize,
    refusals: RefusalLog | None = None,
) -> list[web.RouteDef]:
    """`POST /webhooks/{source}` (the default instance) and `POST /webhooks/{source}/{instance}`."""
    receiver = _Receiver(config, publisher, metrics, now, normalize, refusals or RefusalLog())
    return [
        web.post("/webhooks/{source}", receiver.handle),
        web.post("/webhooks/{source}/{instance}", receiver.handle),
    ]


class _Rejected(Exception):
    """A 4xx answer: the request changes nothing but the rejection metrics."""

    def __init__(
        self, status: int, reason: Reason, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason: Reason = reason
        self.body = body
        self.headers = headers

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


class _Receiver:
    def __init__(
        self,
        config: IngestConfig,
        publisher: Publisher,
        metrics: IngestMetrics,
        now: Callable[[], datetime],
        normalize: Normalize,
        refusals: RefusalLog,
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._metrics = metrics
        self._now = now
        self._normalize = normalize
        self._refusals = refusals

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        source = _known_source(request.match_info["source"])
        label = source.value if source is not None else UNKNOWN_SOURCE
        outcome: Outcome
        try:
            outcome, response = await self._receive(request, source)
        except _Rejected as rejected:
            outcome, response = "rejected", rejected.response()
            self._metrics.rejection(label, rejected.reason)
            self._refusals.refused(label, rejected.status, rejected.reason)
            logger.debug("refused %s webhook: %s", label, rejected.body)
        except Exception:
            self._metrics.request(label, "error", time.perf_counter() - started)
            raise  # json_errors logs it and answers 500
        self._metrics.request(label, outcome, time.perf_counter() - started)
        return response

    async def _receive(self, request: web.Request, source: Source | None) -> tuple[Outcome, web.Response]:
        received_at = self._now()
        if source is None:
            detail = f"no webhook receiver for {request.match_info['source']!r}; known sources: {_KNOWN_SOURCES}"
            raise _Rejected(404, "unknown_source", {"error": "unknown_source", "detail": detail})
        if not is_authorized(request, self._config.tokens.get(source)):
            raise _Rejected(401, "unauthorized", {"error": "unauthorized"}, {hdrs.WWW_AUTHENTICATE: "Bearer"})
        body = await self._read(request)
        idempotency_key = _idempotency_key(request)
        try:
            result = self._normalize(
                source.value,
                body,
                received_at=received_at,
                instance=request.match_info.get("instance"),
                idempotency_key=idempotency_key,
            )
        except UnknownSource as exc:
            raise _Rejected(404, "unknown_source", {"error": "unknown_source", "detail": str(exc)}) from None
        except InvalidAlert as exc:
            raise _Rejected(422, "invalid", {"error": "invalid_alert", "detail": exc.detail}) from None
        if isinstance(result, Ignored):
            return "ignored", web.json_response({"status": "ignored", "reason": result.reason}, status=202)
        return await self._publish(result)

    async def _read(self, request: web.Request) -> dict[str, Any]:
        limit = self._config.max_body_bytes
        try:
            check_declared_size(request, limit)
            kind = media_type(request.headers.get(hdrs.CONTENT_TYPE))
            return decode_body(kind, await read_body(request, limit))
        except BodyTooLarge as exc:
            raise _Rejected(413, "too_large", {"error": "too_large", "detail": exc.detail}) from None
        except UnsupportedMediaType as exc:
            body = {"error": "unsupported_media_type", "detail": exc.detail}
            raise _Rejected(415, "unsupported_media_type", body) from None
        except MalformedBody as exc:
            raise _Rejected(400, "malformed", {"error": "malformed_body", "detail": exc.detail}) from None

    async def _publish(self, alert: Alert) -> tuple[Outcome, web.Response]:
        try:
            await self._publisher.publish(alert)
        except Unavailable as exc:
            # throttled like the refusals: an outage or an overload must not write a line per request
            self._refusals.refused(alert.source.value, 503, "unavailable", str(exc), logging.WARNING)
            retry_after = str(self._config.retry_after_s)
            body = {"error": "unavailable", "detail": str(exc) or "the pipeline cannot take the alert now"}
            return "unavailable", web.json_response(body, status=503, headers={hdrs.RETRY_AFTER: retry_after})
        logger.debug("accepted alert %s for %s", alert.id, alert.dedup_key)
        body = {"status": "accepted", "alert_id": alert.id, "dedup_key": alert.dedup_key, "kind": alert.kind}
        # orjson: a third of `web.json_response`'s cost, on every accepted alert; same JSON, same Content-Type
        return "accepted", web.Response(body=orjson.dumps(body), status=202, content_type=_JSON, charset="utf-8")


_JSON = "application/json"


def _known_source(name: str) -> Source | None:
    try:
        return Source(name)
    except ValueError:
        return None


def _idempotency_key(request: web.Request) -> str | None:
    """The sender's retry key: a retry carrying the same one gets the same alert id, so it counts once."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None or _IDEMPOTENCY_KEY_FORMAT.fullmatch(key):
        return key
    raise _Rejected(
        400,
        "malformed",
        {"error": "invalid_header", "header": IDEMPOTENCY_KEY, "detail": "must be 1 to 255 printable ASCII characters"},
    )
