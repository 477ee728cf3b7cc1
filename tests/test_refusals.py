"""A sender misconfigured at a high rate gets a line a minute in the log, not a line per refused request."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

import normalizers
from ingest import IngestConfig, IngestMetrics, json_errors, webhook_routes
from ingest.refusals import RefusalLog
from normalizers.schema import Alert, Source


class Seconds:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Accepting:
    async def publish(self, alert: Alert) -> None:
        pass


async def edge(
    aiohttp_client: AiohttpClient, clock: Seconds
) -> tuple[TestClient[web.Request, None], CollectorRegistry]:
    registry = CollectorRegistry()
    app = web.Application(middlewares=[json_errors])
    app.add_routes(
        webhook_routes(
            IngestConfig(tokens={Source.NAGIOS: "right", Source.ZABBIX: "right"}),
            Accepting(),
            IngestMetrics(registry),
            now=lambda: datetime(2026, 3, 14, 3, 0, tzinfo=UTC),
            normalize=normalizers.normalize,
            refusals=RefusalLog(clock=clock),
        )
    )
    return await aiohttp_client(app), registry


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    lines = [r for r in caplog.records if r.getMessage().startswith("refused")]
    caplog.clear()
    return [(r.getMessage(), r.__dict__["refusals"]) for r in lines]


async def test_refusals_are_logged_once_then_once_a_minute_per_source_and_reason_with_the_count(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Seconds()
    client, registry = await edge(aiohttp_client, clock)
    caplog.set_level(logging.INFO, logger="ingest")

    async def refused(n: int, path: str = "/webhooks/nagios?token=wrong", status: int = 401) -> None:
        for _ in range(n):
            response = await client.post(path, data={"NOTIFICATIONTYPE": "PROBLEM"})
            assert response.status == status

    await refused(200)
    assert refusal_lines(caplog) == [("refused nagios webhook with 401 (unauthorized)", 1)]

    # Another source, another reason: each has its own first line, at once.
    await refused(3, "/webhooks/zabbix?token=wrong")
    await refused(3, "/webhooks/nagios?token=right", status=422)
    assert refusal_lines(caplog) == [
        ("refused zabbix webhook with 401 (unauthorized)", 1),
        ("refused nagios webhook with 422 (invalid)", 1),
    ]

    clock.now += 59.5
    await refused(100)
    assert refusal_lines(caplog) == []  # still within the minute

    clock.now += 1.5
    await refused(1)
    assert refusal_lines(caplog) == [("refused nagios webhook with 401 (unauthorized): 300 in the last 61 s", 300)]

    await refused(5)
    clock.now += 120
    await refused(1)
    assert refusal_lines(caplog) == [("refused nagios webhook with 401 (unauthorized): 6 in the last 120 s", 6)]

    # The metric counts every one, logged or not.
    labels = {"source": "nagios", "reason": "unauthorized"}
    assert registry.get_sample_value("alertdesk_webhook_rejections_total", labels) == 307
