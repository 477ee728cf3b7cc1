"""The webhook edge through a real aiohttp server: what a sender sees, and what reaches the publisher.

The publisher is the one fake (it records alerts, or says the pipeline is unavailable). Most tests also inject a
small Zabbix-like `normalize`, so they test the edge and not a source mapping; the last ones go through the real
normalizers.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient, AiohttpServer

import normalizers
from ingest import IngestConfig, IngestMetrics, RedactingAccessLogger, json_errors, open_sources, webhook_routes
from normalizers.schema import (
    Alert,
    Envelope,
    Ignored,
    InvalidAlert,
    Kind,
    Source,
    Unavailable,
    alert_id_for,
)

PAYLOADS = Path(__file__).parent / "payloads"
NOW = datetime(2026, 3, 14, 9, 27, 3, tzinfo=UTC)
ONE_MIB = 1_048_576
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


ZABBIX_PROBLEM = payload("zabbix/ingest-problem-cpu.json")


class ListPublisher:
    """Records what it is given; `unavailable` makes it refuse, like a broker that is down."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.unavailable: str | None = None

    async def publish(self, alert: Alert) -> None:
        if self.unavailable is not None:
            raise Unavailable(self.unavailable)
        self.alerts.append(alert)


@dataclass
class RecordingNormalize:
    """A tiny Zabbix pass-through mapping that also records its calls: enough to test the edge around it."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        source: str,
        body: Mapping[str, Any],
        *,
        received_at: datetime,
        instance: str | None = None,
        idempotency_key: str | None = None,
    ) -> Alert | Ignored:
        self.calls.append({"source": source, "body": dict(body), "instance": instance, "key": idempotency_key})
        if body.get("EVENT.SOURCE") != "0":
            return Ignored(reason=f"event source {body.get('EVENT.SOURCE')} is not a trigger")
        if "TRIGGER.ID" not in body:
            raise InvalidAlert.field("TRIGGER.ID", "field required")
        src = Source(source)
        envelope = Envelope(
            source=src,
            instance=instance,
            received_at=received_at,
            alert_id=alert_id_for(src, instance, idempotency_key),
            idempotency_key=idempotency_key,
        )
        return Alert(
            id=envelope.alert_id,
            source=src,
            instance=instance,
            dedup_key=envelope.key(f"trigger/{body['TRIGGER.ID']}"),
            kind=Kind.PROBLEM,
            host=body["HOST.HOST"],
            title=body["EVENT.NAME"],
            received_at=received_at,
            idempotency_key=idempotency_key,
        )


@dataclass
class Edge:
    client: TestClient[web.Request, None]
    publisher: ListPublisher
    normalize: RecordingNormalize
    registry: CollectorRegistry

    def requests(self, source: str, outcome: str) -> float:
        labels = {"source": source, "outcome": outcome}
        return self.registry.get_sample_value("alertdesk_webhook_requests_total", labels) or 0.0

    def rejections(self, source: str, reason: str) -> float:
        labels = {"source": source, "reason": reason}
        return self.registry.get_sample_value("alertdesk_webhook_rejections_total", labels) or 0.0


StartEdge = Callable[..., Awaitable[Edge]]


@pytest.fixture
def start(aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient) -> StartEdge:
    """Starts the edge; `normalize` defaults to the recording fake (pass `normalizers.normalize` for the real)."""

    async def start(
        *,
        tokens: Mapping[Source, str] | None = None,
        normalize: Callable[..., Alert | Ignored] | None = None,
        server_kwargs: Mapping[str, Any] | None = None,
    ) -> Edge:
        publisher, recording, registry = ListPublisher(), RecordingNormalize(), CollectorRegistry()
        routes = webhook_routes(
            IngestConfig(tokens=tokens or {}),
            publisher,
            IngestMetrics(registry),
            now=lambda: NOW,
            normalize=normalize or recording,
        )
        app = web.Application(middlewares=[json_errors])
        app.add_routes(routes)
        server = await aiohttp_server(app, **(server_kwargs or {}))  # server kwargs reach the AppRunner
        client: TestClient[web.Request, None] = await aiohttp_client(server)
        return Edge(client, publisher, recording, registry)

    return start


# --- accepted, ignored, invalid ----------------------------------------------------------------------------


async def test_problem_is_published_then_answered_202(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=JSON)

    assert response.status == 202
    [alert] = edge.publisher.alerts
    assert await response.json() == {
        "status": "accepted",
        "alert_id": alert.id,
        "dedup_key": "zabbix:trigger/23817",
        "kind": "problem",
    }
    assert alert.received_at == NOW
    assert edge.normalize.calls[0]["body"] == json.loads(ZABBIX_PROBLEM)


async def test_named_instance_reaches_the_key(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.post("/webhooks/zabbix/paris", data=ZABBIX_PROBLEM, headers=JSON)

    assert response.status == 202
    assert (await response.json())["dedup_key"] == "zabbix@paris:trigger/23817"
    assert edge.normalize.calls[0]["instance"] == "paris"
    assert edge.publisher.alerts[0].instance == "paris"


async def test_idempotency_key_gives_a_retry_the_same_alert_id(start: StartEdge) -> None:
    edge = await start()
    headers = {**JSON, "Idempotency-Key": "zabbix-8471302-0-0"}

    first = await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=headers)
    retry = await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=headers)
    other = await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=JSON)

    assert [call["key"] for call in edge.normalize.calls] == ["zabbix-8471302-0-0", "zabbix-8471302-0-0", None]
    assert (await first.json())["alert_id"] == (await retry.json())["alert_id"] != (await other.json())["alert_id"]


@pytest.mark.parametrize(
    ("source", "instance", "key", "alert_id"),
    [
        (Source.ZABBIX, None, "zabbix-8471302-0-0", "1832e648-03ef-5e1a-9678-47f87a7d1318"),
        (Source.NAGIOS, "paris", "nagios-4121-1", "cc75c75d-f0c1-5946-9e31-ccce5ff76df4"),
        (Source.SOLARWINDS, None, "~ \u00e9\u00e8 " + "k" * 240, None),
    ],
)
def test_the_alert_id_of_an_idempotency_key_never_changes(
    source: Source, instance: str | None, key: str, alert_id: str | None
) -> None:
    """Ids already stored must keep matching retries after an upgrade: uuid5 in alertdesk's namespace, for ever."""
    expected = uuid.uuid5(
        uuid.UUID("6f1d6d0e-4c1b-4f43-9a55-5d0a3b1f7a10"), f"{source.value}\x00{instance or ''}\x00{key}"
    )
    assert alert_id_for(source, instance, key) == str(expected) == (alert_id or str(expected))


@pytest.mark.parametrize("key", ["", "x" * 256, "clé-8471302"])
async def test_bad_idempotency_key_is_refused_naming_the_header(start: StartEdge, key: str) -> None:
    edge = await start()

    response = await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers={**JSON, "Idempotency-Key": key})

    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_header"
    assert body["header"] == "Idempotency-Key"
    assert edge.publisher.alerts == []


async def test_internal_event_is_ignored_and_not_published(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.post(
        "/webhooks/zabbix", data=payload("zabbix/ingest-internal-event.json"), headers=JSON
    )

    assert response.status == 202
    assert await response.json() == {"status": "ignored", "reason": "event source 3 is not a trigger"}
    assert edge.publisher.alerts == []
    assert edge.requests("zabbix", "ignored") == 1


async def test_invalid_alert_is_422_naming_the_field(start: StartEdge) -> None:
    edge = await start()
    body = json.loads(ZABBIX_PROBLEM)
    del body["TRIGGER.ID"]

    response = await edge.client.post("/webhooks/zabbix", json=body)

    assert response.status == 422
    assert await response.json() == {
        "error": "invalid_alert",
        "detail": [{"loc": ["TRIGGER.ID"], "msg": "field required"}],
    }
    assert edge.publisher.alerts == []
    assert edge.rejections("zabbix", "invalid") == 1


# --- bodies that cannot be read -----------------------------------------------------------------------------


async def test_empty_body_is_400(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.post("/webhooks/zabbix", data=b"", headers=JSON)

    assert response.status == 400
    assert await response.json() == {"error": "malformed_body", "detail": "empty body"}
    assert edge.normalize.calls == []
    assert edge.publisher.alerts == []


async def test_body_that_is_not_json_is_400_with_the_position(start: StartEdge) -> None:
    edge = await start()
    broken = ZABBIX_PROBLEM.replace(b'"HOST.HOST": "db-paris-02"', b'"HOST.HOST": "db-paris-02')

    response = await edge.client.post("/webhooks/zabbix", data=broken, headers=JSON)

    assert response.status == 400
    body = await response.json()
    assert body["error"] == "malformed_body"
    assert "line 23 column 29" in body["detail"]
    assert edge.publisher.alerts == []
    assert edge.rejections("zabbix", "malformed") == 1


async def test_json_array_is_400(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.post("/webhooks/zabbix", data=b"[" + ZABBIX_PROBLEM + b"]", headers=JSON)

    assert response.status == 400
    assert await response.json() == {"error": "malformed_body", "detail": "body must be a JSON object, got an array"}
    assert edge.publisher.alerts == []


@pytest.mark.parametrize("content_type", ["text/plain", None])
async def test_unsupported_content_type_is_415(start: StartEdge, content_type: str | None) -> None:
    edge = await start()
    headers = {"Content-Type": content_type} if content_type else {}

    response = await edge.client.post(
        "/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=headers, skip_auto_headers={"Content-Type"}
    )

    assert response.status == 415
    assert (await response.json())["error"] == "unsupported_media_type"
    assert edge.publisher.alerts == []
    assert edge.rejections("zabbix", "unsupported_media_type") == 1


def _two_mib_of_json() -> bytes:
    padding = b"x" * (2 * ONE_MIB)
    return ZABBIX_PROBLEM.replace(b'"ZABBIX.URL"', b'"padding": "' + padding + b'", "ZABBIX.URL"')


async def test_two_mib_body_with_content_length_is_413(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.post("/webhooks/zabbix", data=io.BytesIO(_two_mib_of_json()), headers=JSON)

    assert response.status == 413
    assert (await response.json())["error"] == "too_large"
    assert edge.normalize.calls == []
    assert edge.publisher.alerts == []
    assert edge.rejections("zabbix", "too_large") == 1


async def test_two_mib_chunked_body_is_413(start: StartEdge) -> None:
    edge = await start()
    body = _two_mib_of_json()

    async def chunks() -> AsyncIterator[bytes]:
        for start_at in range(0, len(body), 65536):
            yield body[start_at : start_at + 65536]

    response = await edge.client.post("/webhooks/zabbix", data=chunks(), headers=JSON)

    assert response.status == 413
    assert (await response.json())["error"] == "too_large"
    assert edge.publisher.alerts == []


async def _response_head(edge: Edge, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send raw bytes, then read one response; the body is never finished, so the server must answer early."""
    assert edge.client.server.port is not None
    reader, writer = await asyncio.open_connection(edge.client.server.host, edge.client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        return status, json.loads(await asyncio.wait_for(reader.readexactly(length), timeout=5))
    finally:
        writer.close()


async def test_announced_size_over_limit_is_413_before_any_body_is_sent(start: StartEdge) -> None:
    edge = await start()
    head = (
        "POST /webhooks/zabbix HTTP/1.1\r\nHost: alertdesk\r\nContent-Type: application/json\r\n"
        f"Content-Length: {2 * ONE_MIB}\r\n\r\n"
    )

    status, body = await _response_head(edge, head.encode())

    assert status == 413
    assert body["error"] == "too_large"
    assert edge.publisher.alerts == []


async def test_chunked_body_is_refused_as_soon_as_it_passes_the_limit(start: StartEdge) -> None:
    edge = await start()
    head = (
        b"POST /webhooks/zabbix HTTP/1.1\r\nHost: alertdesk\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    # Just over the limit, and no terminating chunk: a server that buffers the whole body would never answer.
    status, body = await _response_head(edge, head + chunk * (ONE_MIB // 65536 + 1))

    assert status == 413
    assert body["error"] == "too_large"
    assert edge.normalize.calls == []


# --- authentication -----------------------------------------------------------------------------------------

TOKENS = {Source.ZABBIX: "zbx-7Qm2vR9tLw4K"}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhooks/zabbix", {}),
        ("/webhooks/zabbix", {"Authorization": "Bearer zbx-wrong-token"}),
        ("/webhooks/zabbix?token=zbx-wrong-token", {}),
        ("/webhooks/zabbix", {"Authorization": "Basic emJ4LTdRbTJ2Ujl0THc0Sw=="}),
    ],
    ids=["missing", "wrong-header", "wrong-query", "basic-scheme"],
)
async def test_missing_or_wrong_token_is_401(start: StartEdge, path: str, headers: dict[str, str]) -> None:
    edge = await start(tokens=TOKENS)

    response = await edge.client.post(path, data=ZABBIX_PROBLEM, headers={**JSON, **headers})

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await response.json() == {"error": "unauthorized"}
    assert edge.normalize.calls == []
    assert edge.publisher.alerts == []
    assert edge.rejections("zabbix", "unauthorized") == 1


async def test_token_that_is_not_utf8_is_401_not_500(start: StartEdge) -> None:
    """Found by tests/test_fuzz_http.py: `Authorization: Bearer \x80` crashed the token comparison."""
    edge = await start(tokens=TOKENS)
    head = (
        b"POST /webhooks/zabbix HTTP/1.1\r\nHost: alertdesk\r\nAuthorization: Bearer \x80\r\nContent-Length: 0\r\n\r\n"
    )

    status, body = await _response_head(edge, head)

    assert status == 401
    assert body == {"error": "unauthorized"}
    assert edge.rejections("zabbix", "unauthorized") == 1


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhooks/zabbix", {"Authorization": "Bearer zbx-7Qm2vR9tLw4K"}),
        ("/webhooks/zabbix/paris?token=zbx-7Qm2vR9tLw4K", {}),
    ],
    ids=["header", "query"],
)
async def test_right_token_is_accepted_in_either_form(start: StartEdge, path: str, headers: dict[str, str]) -> None:
    edge = await start(tokens=TOKENS)

    response = await edge.client.post(path, data=ZABBIX_PROBLEM, headers={**JSON, **headers})

    assert response.status == 202
    assert len(edge.publisher.alerts) == 1


async def test_source_without_a_token_stays_open(start: StartEdge) -> None:
    edge = await start(tokens=TOKENS)

    response = await edge.client.post("/webhooks/nagios", data=b"", headers=FORM)

    assert response.status == 400  # past the token check, refused for its empty body
    assert open_sources(TOKENS) == [Source.NAGIOS, Source.SOLARWINDS]


def test_empty_token_is_refused_rather_than_matching_a_missing_one() -> None:
    with pytest.raises(ValueError, match="empty token for nagios"):
        IngestConfig(tokens={Source.NAGIOS: "", Source.ZABBIX: "zbx-7Qm2vR9tLw4K"})


async def test_access_log_never_shows_the_token(start: StartEdge, caplog: pytest.LogCaptureFixture) -> None:
    edge = await start(tokens=TOKENS, server_kwargs={"access_log_class": RedactingAccessLogger})

    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        response = await edge.client.post(
            "/webhooks/zabbix/paris?token=zbx-7Qm2vR9tLw4K&via=proxy-02", data=ZABBIX_PROBLEM, headers=JSON
        )
        for _ in range(100):  # the line is written just after the response is sent
            if caplog.records:
                break
            await asyncio.sleep(0.01)

    assert response.status == 202
    [line] = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
    assert "zbx-7Qm2vR9tLw4K" not in line
    assert '"POST /webhooks/zabbix/paris?token=***&via=proxy-02" 202' in line


# --- routing and failures -----------------------------------------------------------------------------------


async def test_unknown_source_is_404(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.post("/webhooks/prtg", data=ZABBIX_PROBLEM, headers=JSON)

    assert response.status == 404
    body = await response.json()
    assert body["error"] == "unknown_source"
    assert "nagios, zabbix, solarwinds" in body["detail"]
    assert edge.normalize.calls == []
    assert edge.rejections("unknown", "unknown_source") == 1
    assert edge.requests("unknown", "rejected") == 1


async def test_get_is_405_in_json(start: StartEdge) -> None:
    edge = await start()

    response = await edge.client.get("/webhooks/nagios", headers={"Accept": "text/html"})

    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert await response.json() == {"error": "method_not_allowed"}


async def test_unexpected_error_is_500_json_without_trace(start: StartEdge, caplog: pytest.LogCaptureFixture) -> None:
    def broken(source: str, body: Mapping[str, Any], **kwargs: Any) -> Alert:
        return Alert.model_validate({"source": source, **body})  # a bug: pydantic raises ValidationError

    edge = await start(normalize=broken)

    with caplog.at_level(logging.ERROR, logger="ingest"):
        response = await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=JSON)

    assert response.status == 500
    assert await response.json() == {"error": "internal"}
    [record] = [r for r in caplog.records if r.name == "ingest.errors"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert edge.publisher.alerts == []
    assert edge.requests("zabbix", "error") == 1


async def test_unavailable_publisher_is_503_with_retry_after(start: StartEdge) -> None:
    edge = await start()
    edge.publisher.unavailable = "broker did not confirm within 5s"

    response = await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=JSON)

    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert await response.json() == {"error": "unavailable", "detail": "broker did not confirm within 5s"}
    assert edge.publisher.alerts == []
    assert edge.requests("zabbix", "unavailable") == 1


async def test_metrics_count_each_outcome_under_its_source(start: StartEdge) -> None:
    edge = await start()

    await edge.client.post("/webhooks/zabbix", data=ZABBIX_PROBLEM, headers=JSON)
    await edge.client.post("/webhooks/zabbix/paris", data=ZABBIX_PROBLEM, headers=JSON)
    await edge.client.post("/webhooks/nagios", data=b"", headers=FORM)

    assert edge.requests("zabbix", "accepted") == 2
    assert edge.requests("nagios", "rejected") == 1
    assert edge.rejections("nagios", "malformed") == 1
    assert edge.requests("zabbix", "rejected") == 0
    duration = edge.registry.get_sample_value("alertdesk_webhook_duration_seconds_count", {"source": "zabbix"})
    assert duration == 2


# --- through the real normalizers ---------------------------------------------------------------------------


async def test_nagios_form_problem_through_the_real_normalizer(start: StartEdge) -> None:
    edge = await start(normalize=normalizers.normalize)

    response = await edge.client.post(
        "/webhooks/nagios", data=payload("nagios/ingest-pagerduty-service-problem.form.txt"), headers=FORM
    )

    assert response.status == 202
    [alert] = edge.publisher.alerts
    assert await response.json() == {
        "status": "accepted",
        "alert_id": alert.id,
        "dedup_key": "nagios:web-01/DISK /",
        "kind": "problem",
    }
    assert alert.description == "DISK CRITICAL - free space: / 912 MB (4% inode=71%):"
    assert alert.received_at == NOW


async def test_orion_raw_crlf_form_arrives_intact(start: StartEdge) -> None:
    edge = await start(normalize=normalizers.normalize)

    response = await edge.client.post(
        "/webhooks/solarwinds",
        data=payload("solarwinds/ingest-opsgenie-create-volume.form.txt"),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )

    assert response.status == 202
    assert (await response.json())["dedup_key"] == "solarwinds:2291"
    [alert] = edge.publisher.alerts
    assert alert.title == "Volume D:\\ almost full on FS-PARIS-03"
    assert alert.description.startswith(
        'Volume D:\\ Label:Data on FS-PARIS-03 is 97 % full & growing; owner CORP\\jdupont said "do not purge"'
        " (ratio=0.97).\n\nDéclenchée quand l'espace libre d'un volume passe sous 5 % : prévenir l'équipe"
    )
    assert alert.source_refs["url"].endswith("ActiveAlertDetails.aspx?NetObject=AAT:2291&ViewID=12")
