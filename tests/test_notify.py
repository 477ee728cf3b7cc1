"""Notifications as the receiving end sees them: a real HTTP server on 127.0.0.1 stands in for the generic webhook,
Slack and Microsoft Teams, and gets the documented bodies (CONTRACT §3) — once per step, even when it was down for a
while, when the notifier restarted in between, or when a worker died in the middle of a send.

The outbox backoff runs on the injected clock (the `now` the Notifier is given); only tenacity's short in-process
retries take real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from dedup.fold import fold
from normalizers.schema import Alert, Kind, Severity, Source
from tests.conftest import Clock
from tests.process import free_port
from ticketstore import tables as t
from ticketstore.db import Engines, create_engines
from ticketstore.escalation.notify import Notifier, NotifyMetrics
from ticketstore.escalation.scan import escalate_due
from ticketstore.lifecycle import Lifecycle
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

PATHS = {
    "ops-hook": "/alertdesk/v1/events",
    "ops-slack": "/services/T024BE7LD/B08S1L0NE6M/vZ3kqH8f2mXyR1nTq0pLc4aW",
    "ops-teams": "/webhookb2/7f3c1a2e-4d1b/IncomingWebhook/4be1d3c9a0f2",
    "ops-webex": "/v1/webhooks/incoming/Y2lzY29zcGFyazovL3VzL1dFQkhPT0svZjM4",
}
TITLE = "DISK / on web-01 is CRITICAL"
HEADLINE = f"[P1] INC-000001 opened: {TITLE}"
CONTRACT_FIELDS = {  # CONTRACT §4, the ticket a webhook receiver gets
    "id",
    "number",
    "dedup_key",
    "source",
    "title",
    "description",
    "host",
    "host_display",
    "service",
    "address",
    "severity",
    "peak_severity",
    "priority",
    "status",
    "suppressed",
    "flapping",
    "occurrences",
    "first_seen",
    "last_seen",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
    "assigned_group",
    "assignee",
    "escalation_level",
    "sla",
    "previous_ticket_id",
    "source_refs",
    "contact",
}


@dataclass
class Delivery:
    channel: str
    idempotency_key: str | None  # the header
    body: dict[str, Any]
    answered: int


@dataclass
class Receiver:
    """One aiohttp server on 127.0.0.1 with the three endpoints; it answers `status`, or holds requests."""

    port: int
    status: int = 200
    hold: asyncio.Event | None = None  # while set to an unset event, requests wait for it (a send "in flight")
    deliveries: list[Delivery] = field(default_factory=list)
    server: TestServer | None = None

    def url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.port}{PATHS[channel]}"

    async def start(self) -> None:
        app = web.Application()
        for channel, path in PATHS.items():
            app.router.add_post(path, self._handler(channel))
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.server is not None:
            await self.server.close()
            self.server = None

    def _handler(self, channel: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.deliveries.append(Delivery(channel, request.headers.get("Idempotency-Key"), body, self.status))
            if self.hold is not None:
                await self.hold.wait()
            return web.Response(status=self.status, text="ok")

        return handle

    def accepted(self) -> list[tuple[str, str | None]]:
        """(channel, idempotency key) of each delivery answered 2xx, in arrival order."""
        return [(d.channel, d.idempotency_key) for d in self.deliveries if d.answered < 300]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(free_port())
    await receiver.start()
    yield receiver
    await receiver.stop()


def policy_for(receiver: Receiver) -> Policy:
    return Policy.model_validate(
        {
            "channels": {
                "ops-hook": {"type": "webhook", "url": receiver.url("ops-hook")},
                "ops-slack": {"type": "slack", "url": receiver.url("ops-slack")},
                "ops-teams": {"type": "teams", "url": receiver.url("ops-teams")},
            },
            "severities": {
                "critical": {
                    "priority": "P1",
                    "respond_within": "15m",
                    "resolve_within": "4h",
                    "notify": ["ops-hook", "ops-slack", "ops-teams"],
                    "escalation": [{"after": "15m", "group": "oncall-l2", "notify": ["ops-hook", "ops-teams"]}],
                }
            },
            "routes": [{"match": {"source": "nagios", "service": "DISK *"}, "group": "storage"}],
        }
    )


def disk_problem(clock: Clock) -> Alert:
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.NAGIOS,
        dedup_key="nagios:web-01/DISK /",
        kind=Kind.PROBLEM,
        severity=Severity.CRITICAL,
        episode_id="48213",
        host="web-01",
        host_display="web-01.paris.example.net",
        service="DISK /",
        address="10.0.4.21",
        title=TITLE,
        description="DISK CRITICAL - free space: / 1843 MB (4.6% inode=71%):",
        contact="oncall-storage@example.net",
        source_refs={"problem_id": "48213"},
        received_at=clock(),
    )


@dataclass
class Worker:
    """A store worker's escalation side: its store, its notifier, its own metrics registry."""

    store: TicketStore
    notifier: Notifier
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@contextlib.asynccontextmanager
async def worker(
    engines: Engines, policy: Policy, clock: Clock, public_url: str | None = None
) -> AsyncIterator[Worker]:
    registry = CollectorRegistry()
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(engines, policy, session, NotifyMetrics(registry), now=clock, public_url=public_url)
        yield Worker(TicketStore(engines, Lifecycle(policy), now=clock), notifier, registry)


async def outbox(engines: Engines) -> Sequence[Any]:
    """The notifications, in order: event, channel, status, attempts, next_attempt_at, last_error."""
    n = t.notifications.c
    query = select(n.event, n.channel, n.status, n.attempts, n.next_attempt_at, n.last_error).order_by(n.id)
    async with engines.read.connect() as conn:
        return (await conn.execute(query)).all()


async def history(engines: Engines, *kinds: str) -> list[str]:
    """The details of the ticket's history entries of these kinds, in order."""
    h = t.history.c
    query = select(h.detail).where(h.ticket_id == 1, h.kind.in_(kinds)).order_by(h.id)
    async with engines.read.connect() as conn:
        return [r.detail for r in await conn.execute(query)]


# --- bodies ----------------------------------------------------------------------------------------------------------


async def test_with_a_public_url_every_channel_links_to_the_ticket_page(
    engines: Engines, clock: Clock, receiver: Receiver
) -> None:
    async with worker(engines, policy_for(receiver), clock, public_url="https://desk.example.net/") as w:
        await w.store.apply_batch(fold([disk_problem(clock)]))
        assert await w.notifier.run_once() == 3
    link = "https://desk.example.net/tickets/1"
    by_channel = {d.channel: d.body for d in receiver.deliveries}
    assert by_channel["ops-hook"]["url"] == link
    assert by_channel["ops-slack"]["text"] == f"{HEADLINE} {link}"
    assert by_channel["ops-slack"]["blocks"][0]["text"]["text"].startswith(f"*<{link}|")
    assert by_channel["ops-teams"]["potentialAction"][0]["targets"] == [{"os": "default", "uri": link}]


async def test_webhook_slack_and_teams_receive_their_documented_bodies(
    engines: Engines, clock: Clock, receiver: Receiver
) -> None:
    async with worker(engines, policy_for(receiver), clock) as w:
        await w.store.apply_batch(fold([disk_problem(clock)]))
        assert await w.notifier.run_once() == 3

    by_channel = {d.channel: d for d in receiver.deliveries}
    assert sorted(by_channel) == ["ops-hook", "ops-slack", "ops-teams"]
    assert {d.idempotency_key for d in receiver.deliveries} == {"INC-000001:opened:opened"}
    ticket = {
        "id": 1,
        "number": "INC-000001",
        "dedup_key": "nagios:web-01/DISK /",
        "source": "nagios",
        "instance": None,
        "title": TITLE,
        "description": "DISK CRITICAL - free space: / 1843 MB (4.6% inode=71%):",
        "host": "web-01",
        "host_display": "web-01.paris.example.net",
        "service": "DISK /",
        "address": "10.0.4.21",
        "severity": "critical",
        "peak_severity": "critical",
        "priority": "P1",
        "status": "open",
        "suppressed": False,
        "flapping": False,
        "occurrences": 1,
        "first_seen": "2026-03-14T03:00:00Z",
        "last_seen": "2026-03-14T03:00:00Z",
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_at": None,
        "closed_at": None,
        "assigned_group": "storage",
        "assignee": None,
        "escalation_level": 0,
        "sla": {
            "respond_by": "2026-03-14T03:15:00Z",
            "resolve_by": "2026-03-14T07:00:00Z",
            "response_breached": False,
            "resolution_breached": False,
        },
        "previous_ticket_id": None,
        "source_refs": {"problem_id": "48213"},
        "contact": "oncall-storage@example.net",
        "tags": {},
        "runbook_url": None,
        "external_refs": {},
    }
    assert by_channel["ops-hook"].body == {
        "event": "opened",
        "level": 0,
        "idempotency_key": "INC-000001:opened:opened",
        "ticket": ticket,
    }
    assert ticket.keys() >= CONTRACT_FIELDS
    facts = "Severity: critical · Status: open · Host: web-01.paris.example.net · Group: storage · Escalation level: 0"
    assert by_channel["ops-slack"].body == {
        "text": HEADLINE,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{HEADLINE}*"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]},
        ],
    }
    assert by_channel["ops-teams"].body == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": HEADLINE,
        "themeColor": "B00020",
        "title": HEADLINE,
        "sections": [
            {
                "facts": [
                    {"name": "Severity", "value": "critical"},
                    {"name": "Status", "value": "open"},
                    {"name": "Host", "value": "web-01.paris.example.net"},
                    {"name": "Group", "value": "storage"},
                    {"name": "Escalation level", "value": "0"},
                ]
            }
        ],
    }


async def test_webex_and_the_runbook_link_reach_every_channel_url_encoded(
    engines: Engines, clock: Clock, receiver: Receiver
) -> None:
    """A service named `Disk /var & logs` still makes one valid link; Webex gets its markdown message."""
    channels = ["ops-hook", "ops-slack", "ops-teams", "ops-webex"]
    policy = Policy.model_validate(
        {
            "channels": {
                name: {"type": name.removeprefix("ops-").replace("hook", "webhook"), "url": receiver.url(name)}
                for name in channels
            },
            "severities": {
                "critical": {"priority": "P1", "notify": channels, "runbook": "https://wiki.example.net/sev/{host}"}
            },
            "routes": [
                {
                    "match": {"source": "nagios", "service": "Disk *"},
                    "group": "storage",
                    "runbook": "https://wiki.example.net/runbooks/{source}/{host}/{service}?key={dedup_key}",
                }
            ],
        }
    )
    problem = disk_problem(clock).model_copy(update={"service": "Disk /var & logs", "dedup_key": "nagios:web-01/d"})
    async with worker(engines, policy, clock) as w:
        await w.store.apply_batch(fold([problem]))
        assert await w.notifier.run_once() == 4

    link = "https://wiki.example.net/runbooks/nagios/web-01/Disk%20%2Fvar%20%26%20logs?key=nagios%3Aweb-01%2Fd"
    by_channel = {d.channel: d.body for d in receiver.deliveries}
    assert by_channel["ops-hook"]["ticket"]["runbook_url"] == link
    assert by_channel["ops-slack"]["blocks"][-1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"<{link}|Runbook>"},
    }
    assert by_channel["ops-teams"]["potentialAction"] == [
        {"@type": "OpenUri", "name": "Runbook", "targets": [{"os": "default", "uri": link}]}
    ]
    headline = f"[P1] INC-000001 opened: {TITLE}"
    facts = "Severity: critical · Status: open · Host: web-01.paris.example.net · Group: storage · Escalation level: 0"
    assert by_channel["ops-webex"] == {"markdown": f"**{headline}**\n\n{facts}\n\n[Runbook]({link})"}


async def test_an_escalation_reaches_the_step_channels_with_the_ticket_as_escalated(
    engines: Engines, clock: Clock, receiver: Receiver
) -> None:
    async with worker(engines, policy_for(receiver), clock) as w:
        await w.store.apply_batch(fold([disk_problem(clock)]))
        await w.notifier.run_once()
        receiver.deliveries.clear()
        clock.advance(minutes=15)
        await escalate_due(w.store)
        assert await w.notifier.run_once() == 5

    assert sorted(receiver.accepted()) == [
        ("ops-hook", "INC-000001:escalated:1"),
        ("ops-hook", "INC-000001:sla_breached:response"),
        ("ops-slack", "INC-000001:sla_breached:response"),
        ("ops-teams", "INC-000001:escalated:1"),
        ("ops-teams", "INC-000001:sla_breached:response"),
    ]
    [hook] = [d.body for d in receiver.deliveries if d.channel == "ops-hook" and d.body["event"] == "escalated"]
    assert (hook["event"], hook["level"], hook["idempotency_key"]) == ("escalated", 1, "INC-000001:escalated:1")
    assert (hook["ticket"]["escalation_level"], hook["ticket"]["assigned_group"]) == (1, "oncall-l2")
    assert hook["ticket"]["sla"]["response_breached"] is True
    [card] = [d.body for d in receiver.deliveries if d.channel == "ops-teams" and "escalated" in d.body["title"]]
    assert card["title"] == f"[P1] INC-000001 escalated: {TITLE}"
    assert card["sections"][0]["facts"][3:] == [
        {"name": "Group", "value": "oncall-l2"},
        {"name": "Escalation level", "value": "1"},
    ]


# --- failures ----------------------------------------------------------------------------------------------------------


async def test_endpoint_down_reschedules_with_backoff_and_delivers_each_step_once_after_a_restart(
    database: tuple[str, str | None], engines: Engines, clock: Clock, receiver: Receiver
) -> None:
    url, schema = database
    t0 = clock()
    policy = policy_for(receiver)
    await receiver.stop()
    async with worker(engines, policy, clock) as w:
        await w.store.apply_batch(fold([disk_problem(clock)]))
        assert await w.notifier.run_once() == 3

        rows = await outbox(engines)
        assert [(r.event, r.channel, r.status, r.attempts, r.next_attempt_at) for r in rows] == [
            ("opened", channel, "pending", 1, t0 + timedelta(seconds=10))
            for channel in ("ops-hook", "ops-slack", "ops-teams")
        ]
        assert all("Cannot connect to host 127.0.0.1" in r.last_error for r in rows)
        failed = await history(engines, "notification_failed")
        assert [d.split(":")[0] for d in failed] == [
            "opened (level 0) via ops-hook",
            "opened (level 0) via ops-slack",
            "opened (level 0) via ops-teams",
        ]
        assert all(d.endswith("; retrying") for d in failed)
        assert w.metric("alertdesk_notifications_total", channel="ops-slack", outcome="failed") == 1.0
        assert w.metric("alertdesk_outbox_pending") == 3.0

        clock.advance(seconds=9)
        assert await w.notifier.run_once() == 0  # not before its time

        clock.current = t0 + timedelta(minutes=15)  # still down when the ticket escalates
        await escalate_due(w.store)
        assert await w.notifier.run_once() == 8
        assert [(r.event, r.attempts, r.next_attempt_at) for r in await outbox(engines)][::3] == [
            ("opened", 2, t0 + timedelta(minutes=15, seconds=20)),
            ("sla_breached", 1, t0 + timedelta(minutes=15, seconds=10)),
            ("escalated", 1, t0 + timedelta(minutes=15, seconds=10)),
        ]
        assert w.metric("alertdesk_notifications_total", channel="ops-hook", outcome="failed") == 4.0
        assert w.metric("alertdesk_outbox_pending") == 8.0
    await engines.dispose()  # graceful restart: the notifier and its database connections go away

    await receiver.start()
    clock.current = t0 + timedelta(minutes=15, seconds=20)
    restarted = create_engines(url, schema=schema)
    try:
        async with worker(restarted, policy, clock) as w:
            assert await w.notifier.run_once() == 8
            clock.advance(hours=1)
            assert await w.notifier.run_once() == 0
            assert w.metric("alertdesk_notifications_total", channel="ops-hook", outcome="sent") == 3.0
            assert w.metric("alertdesk_outbox_pending") == 0.0
        rows = await outbox(restarted)
        notified = await history(restarted, "notified")
    finally:
        await restarted.dispose()

    assert sorted(receiver.accepted()) == [
        ("ops-hook", "INC-000001:escalated:1"),
        ("ops-hook", "INC-000001:opened:opened"),
        ("ops-hook", "INC-000001:sla_breached:response"),
        ("ops-slack", "INC-000001:opened:opened"),
        ("ops-slack", "INC-000001:sla_breached:response"),
        ("ops-teams", "INC-000001:escalated:1"),
        ("ops-teams", "INC-000001:opened:opened"),
        ("ops-teams", "INC-000001:sla_breached:response"),
    ]
    assert {(r.status, r.last_error) for r in rows} == {("sent", None)}
    assert notified[0] == "opened (level 0) via ops-hook after 3 attempts"
    assert len(notified) == 8


async def test_endpoint_answering_500_is_retried_until_it_answers(
    engines: Engines, clock: Clock, receiver: Receiver
) -> None:
    receiver.status = 500
    async with worker(engines, policy_for(receiver), clock) as w:
        await w.store.apply_batch(fold([disk_problem(clock)]))
        await w.notifier.run_once()
        failing = await outbox(engines)

        receiver.status = 200
        clock.advance(seconds=10)
        assert await w.notifier.run_once() == 3
        assert w.metric("alertdesk_notifications_total", channel="ops-teams", outcome="failed") == 1.0
        assert w.metric("alertdesk_notifications_total", channel="ops-teams", outcome="sent") == 1.0

    assert {(r.status, r.attempts, r.last_error) for r in failing} == {("pending", 1, "HTTP 500 from the endpoint")}
    assert sorted(d.channel for d in receiver.deliveries if d.answered == 500) == [  # tenacity's quick retries
        "ops-hook",
        "ops-hook",
        "ops-hook",
        "ops-slack",
        "ops-slack",
        "ops-slack",
        "ops-teams",
        "ops-teams",
        "ops-teams",
    ]
    assert sorted(receiver.accepted()) == [
        ("ops-hook", "INC-000001:opened:opened"),
        ("ops-slack", "INC-000001:opened:opened"),
        ("ops-teams", "INC-000001:opened:opened"),
    ]
    assert (await history(engines, "notification_failed"))[0] == (
        "opened (level 0) via ops-hook: HTTP 500 from the endpoint; retrying"
    )


async def test_a_send_whose_worker_died_is_taken_by_another_worker_after_the_lease(
    engines: Engines, clock: Clock, receiver: Receiver
) -> None:
    policy = policy_for(receiver)
    t0 = clock()
    receiver.hold = asyncio.Event()
    async with worker(engines, policy, clock) as dying:
        await dying.store.apply_batch(fold([disk_problem(clock)]))
        sending = asyncio.create_task(dying.notifier.run_once())
        for _ in range(500):
            if len(receiver.deliveries) == 3:
                break
            await asyncio.sleep(0.01)
        sending.cancel()  # the worker dies with its three requests in flight
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    receiver.hold.set()
    receiver.hold = None

    async with worker(engines, policy, clock) as taking_over:
        clock.current = t0 + timedelta(minutes=1, seconds=59)
        assert await taking_over.notifier.run_once() == 0  # still leased to the dead worker
        clock.current = t0 + timedelta(minutes=2, seconds=1)
        assert await taking_over.notifier.run_once() == 3

    assert sorted((d.channel, d.idempotency_key) for d in receiver.deliveries) == [
        (channel, "INC-000001:opened:opened") for channel in ("ops-hook", "ops-slack", "ops-teams") for _ in range(2)
    ]  # at least once: the receiver drops the repeat by its key
    assert {(r.status, r.attempts) for r in await outbox(engines)} == {("sent", 2)}
    assert (await history(engines, "notified"))[0] == "opened (level 0) via ops-hook after 2 attempts"
