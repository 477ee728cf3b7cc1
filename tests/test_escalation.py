"""Escalation by severity (CONTRACT §3) as the on-call team lives it: deadlines, steps, breaches, notifications.

The tests drive the store as production does — `fold`, `TicketStore.apply_batch`, operator actions through
`TicketStore.act`, the scanner `escalate_due` — on SQLite and on the machine's PostgreSQL, on an
injected clock (03:00 on Saturday 14 March 2026 unless a test says otherwise), and read back what a user sees: the
ticket row, its history, the notification outbox. The races at the end need two real writers: PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy import RowMapping, select, text

from dedup.fold import fold
from normalizers.schema import Alert, Kind, Severity, Source
from tests.conftest import Clock
from ticketstore import actions
from ticketstore import tables as t
from ticketstore.db import Engines, create_engines
from ticketstore.escalation.loops import Background, EscalationMetrics
from ticketstore.escalation.notify import Notifier, NotifyMetrics
from ticketstore.escalation.scan import escalate_due
from ticketstore.lifecycle import Lifecycle
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

POLICY = Policy.model_validate(
    yaml.safe_load(
        """
default_group: service-desk
channels:
  ops-hook: {type: webhook, url: "https://ops.example.net/alertdesk"}
  ops-slack: {type: slack, url: "https://hooks.slack.com/services/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"}
  ops-teams: {type: teams, url: "https://contoso.webhook.office.com/webhookb2/7f3c1a2e/IncomingWebhook/4be1d3c9"}
business_hours: {timezone: Europe/Paris, days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}
severities:
  critical:
    priority: P1
    respond_within: 15m
    resolve_within: 4h
    notify: [ops-hook, ops-slack]
    escalation:
      - {after: 15m, group: oncall-l2, notify: [ops-hook]}
      - {after: 30m, group: ops-managers, notify: [ops-hook, ops-teams]}
      - {after: 1h, group: it-director, notify: [ops-teams]}
  major:
    priority: P2
    respond_within: 30m
    resolve_within: 8h
    notify: [ops-hook]
    escalation: [{after: 45m, group: oncall-l2, notify: [ops-hook]}]
  minor: {priority: P3, respond_within: 4h, resolve_within: 1d, notify: [ops-hook]}
  warning:
    priority: P4
    respond_within: 8h
    resolve_within: 2d
    business_hours: true
    notify: [ops-hook]
    escalation: [{after: 4h, group: service-desk-l2, notify: [ops-hook]}]
  info: {priority: P5}
routes:
  - {match: {source: zabbix, host: "db*"}, group: dba}
  - {match: {source: nagios, service: "DISK *"}, group: storage}
overrides:
  - {match: {source: solarwinds, severity: critical}, reopen_within: 30m}
"""
    )
)

STATE = {Severity.CRITICAL: "CRITICAL", Severity.MINOR: "UNKNOWN", Severity.WARNING: "WARNING"}
OUTPUT = {
    ("DISK /", Severity.CRITICAL): "DISK CRITICAL - free space: / 1843 MB (4.6% inode=71%):",
    ("DISK /", Severity.WARNING): "DISK WARNING - free space: / 3912 MB (9.8% inode=74%):",
    ("Swap Usage", Severity.CRITICAL): "SWAP CRITICAL - 4% free (162 MB out of 4095 MB)",
}
ZABBIX_NAMES = {  # EVENT.NSEVERITY 5..1 with a trigger each, as §4 maps them
    Severity.CRITICAL: ("23710", "db-paris-01", "PostgreSQL is down"),
    Severity.MAJOR: ("23711", "app-lyon-03", "High CPU utilization (over 90% for 5m)"),
    Severity.MINOR: ("23712", "web-paris-04", "Free disk space is less than 20% on volume /var"),
    Severity.WARNING: ("23713", "mq-lyon-01", "RabbitMQ queue depth is too high (over 10000 for 15m)"),
    Severity.INFO: ("23714", "backup-paris-01", "Backup job finished with warnings"),
}


def nagios(
    clock: Clock,
    kind: Kind,
    *,
    host: str = "web-01",
    service: str = "DISK /",
    severity: Severity = Severity.CRITICAL,
    problem_id: str | None = "48213",
    **extra: Any,
) -> Alert:
    """A Nagios service notification, received now."""
    ok = kind is Kind.RECOVERY or extra.get("state_ok") is True
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.NAGIOS,
        dedup_key=f"nagios:{host}/{service}",
        kind=kind,
        severity=None if ok else severity,
        episode_id=problem_id,
        host=host,
        service=service,
        address="10.0.4.21",
        title=f"{service} on {host} is {'OK' if ok else STATE[severity]}",
        description="" if ok else OUTPUT.get((service, severity), ""),
        source_refs={"problem_id": problem_id or "0"},
        received_at=clock(),
        **extra,
    )


def zabbix(clock: Clock, severity: Severity) -> Alert:
    trigger, host, name = ZABBIX_NAMES[severity]
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.ZABBIX,
        dedup_key=f"zabbix:trigger/{trigger}",
        kind=Kind.PROBLEM,
        severity=severity,
        episode_id=f"4821{trigger}",
        host=host,
        title=name,
        source_refs={"event_id": f"4821{trigger}"},
        received_at=clock(),
    )


def core_switch(clock: Clock, kind: Kind, active_id: str) -> Alert:
    """SolarWinds Orion's "Node is down" on CORE-SW-01 (AlertObjectID 1842), one activation per AlertActiveID."""
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.SOLARWINDS,
        dedup_key="solarwinds:1842",
        kind=kind,
        severity=Severity.CRITICAL if kind is Kind.PROBLEM else None,
        episode_id=active_id,
        host="CORE-SW-01",
        address="10.20.0.1",
        title="Node is down on CORE-SW-01",
        source_refs={"alert_object_id": "1842", "alert_active_id": active_id},
        received_at=clock(),
    )


def at(clock: Clock, start: datetime, **delta: float) -> datetime:
    """Set the clock to `start + delta`."""
    clock.current = start + timedelta(**delta)
    return clock.current


@dataclass
class Desk:
    """The store as the store worker drives it, and what an operator reads back."""

    store: TicketStore
    engines: Engines

    async def send(self, *alerts: Alert) -> None:
        await self.store.apply_batch(fold(alerts))

    async def scan(self, store: TicketStore | None = None) -> list[tuple[str, str]]:
        """One scanner round: the (event, step) it fired, e.g. ("escalated", "1"), ("sla_breached", "response")."""
        return [(notice.event, notice.tag) for notice, _ in await escalate_due(store or self.store)]

    async def tickets(self) -> list[RowMapping]:
        async with self.engines.read.connect() as conn:
            return [r._mapping for r in await conn.execute(select(t.tickets).order_by(t.tickets.c.id))]

    async def ticket(self, ticket_id: int = 1) -> RowMapping:
        async with self.engines.read.connect() as conn:
            return (await conn.execute(select(t.tickets).where(t.tickets.c.id == ticket_id))).one()._mapping

    async def history(self, ticket_id: int = 1) -> list[tuple[str, str, str]]:
        """(when, kind, detail), `when` as "Sat 03:15" (UTC)."""
        h = t.history.c
        async with self.engines.read.connect() as conn:
            rows = await conn.execute(select(h.at, h.kind, h.detail).where(h.ticket_id == ticket_id).order_by(h.id))
            return [(f"{r.at:%a %H:%M}", r.kind, r.detail) for r in rows]

    async def kinds(self, ticket_id: int = 1) -> list[str]:
        return [kind for _, kind, _ in await self.history(ticket_id)]

    async def outbox(self, ticket_id: int | None = None) -> list[tuple[str, int, str, str]]:
        """(event, level, channel, idempotency_key) of the notifications written, in order."""
        n = t.notifications.c
        query = select(n.event, n.level, n.channel, n.idempotency_key).order_by(n.id)
        if ticket_id is not None:
            query = query.where(n.ticket_id == ticket_id)
        async with self.engines.read.connect() as conn:
            return [(r.event, r.level, r.channel, r.idempotency_key) for r in await conn.execute(query)]


def desk_for(engines: Engines, clock: Clock, policy: Policy = POLICY) -> Desk:
    return Desk(TicketStore(engines, Lifecycle(policy), now=clock, cache=True), engines)  # as `alertdesk run`


@pytest.fixture
def desk(engines: Engines, clock: Clock) -> Desk:
    return desk_for(engines, clock)


def pick(row: RowMapping, *names: str) -> tuple[Any, ...]:
    return tuple(row[name] for name in names)


def sat(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, 14, hour, minute, second, tzinfo=UTC)


# --- on open ----------------------------------------------------------------------------------------------------


async def test_open_follows_the_default_table_of_the_contract(engines: Engines, clock: Clock) -> None:
    desk = desk_for(engines, clock, Policy())
    order = [Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.WARNING, Severity.INFO]
    await desk.send(*(zabbix(clock, s) for s in order))

    rows = await desk.tickets()
    columns = ("priority", "assigned_group", "respond_by", "resolve_by", "escalation_level", "next_escalation_at")
    assert [pick(r, *columns) for r in rows] == [
        ("P1", "service-desk", sat(3, 15), sat(7), 0, None),
        ("P2", "service-desk", sat(3, 30), sat(11), 0, None),
        ("P3", "service-desk", sat(7), datetime(2026, 3, 15, 3, tzinfo=UTC), 0, None),
        ("P4", "service-desk", sat(11), datetime(2026, 3, 17, 3, tzinfo=UTC), 0, None),
        ("P5", "service-desk", None, None, 0, None),
    ]


async def test_open_takes_priority_group_deadlines_and_first_step_from_the_policy(desk: Desk, clock: Clock) -> None:
    await desk.send(
        zabbix(clock, Severity.CRITICAL),  # db-paris-01: the dba route
        nagios(clock, Kind.PROBLEM),  # DISK / on web-01: the storage route
        nagios(clock, Kind.PROBLEM, host="db-lyon-01", service="MySQL connections"),  # db* but not from zabbix
        zabbix(clock, Severity.MAJOR),  # app-lyon-03: no route
        zabbix(clock, Severity.MINOR),  # no steps for minor
    )

    rows = await desk.tickets()
    columns = ("dedup_key", "priority", "assigned_group", "respond_by", "resolve_by", "next_escalation_at")
    assert [pick(r, *columns) for r in rows] == [
        ("zabbix:trigger/23710", "P1", "dba", sat(3, 15), sat(7), sat(3, 15)),
        ("nagios:web-01/DISK /", "P1", "storage", sat(3, 15), sat(7), sat(3, 15)),
        ("nagios:db-lyon-01/MySQL connections", "P1", "service-desk", sat(3, 15), sat(7), sat(3, 15)),
        ("zabbix:trigger/23711", "P2", "service-desk", sat(3, 30), sat(11), sat(3, 45)),
        ("zabbix:trigger/23712", "P3", "service-desk", sat(7), datetime(2026, 3, 15, 3, tzinfo=UTC), None),
    ]


# --- steps --------------------------------------------------------------------------------------------------------


async def test_nobody_acknowledging_escalates_level_1_2_3_each_once_at_its_time(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))

    at(clock, t0, minutes=14, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, minutes=15)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]
    assert await desk.scan() == []
    assert pick(await desk.ticket(), "escalation_level", "assigned_group", "next_escalation_at") == (
        1,
        "oncall-l2",
        sat(3, 30),
    )
    at(clock, t0, minutes=29, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, minutes=30)
    assert await desk.scan() == [("escalated", "2")]
    assert await desk.scan() == []
    at(clock, t0, minutes=59, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, hours=1)
    assert await desk.scan() == [("escalated", "3")]
    assert await desk.scan() == []
    at(clock, t0, hours=4)
    assert await desk.scan() == [("sla_breached", "resolution")]
    at(clock, t0, hours=12)
    assert await desk.scan() == []

    ticket = await desk.ticket()
    assert pick(ticket, "status", "escalation_level", "assigned_group", "next_escalation_at") == (
        "open",
        3,
        "it-director",
        None,
    )
    assert pick(ticket, "response_breached", "resolution_breached") == (True, True)
    assert await desk.history() == [
        ("Sat 03:00", "opened", "critical P1: DISK / on web-01 is CRITICAL"),
        ("Sat 03:15", "sla_breached", "response: not acknowledged by 2026-03-14 03:15:00Z"),
        ("Sat 03:15", "escalated", "level 1: unacknowledged after 0:15:00, assigned to oncall-l2"),
        ("Sat 03:30", "escalated", "level 2: unacknowledged after 0:30:00, assigned to ops-managers"),
        ("Sat 04:00", "escalated", "level 3: unacknowledged after 1:00:00, assigned to it-director"),
        ("Sat 07:00", "sla_breached", "resolution: not resolved by 2026-03-14 07:00:00Z"),
    ]


async def test_each_event_goes_to_its_channels_with_a_stable_idempotency_key(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    for minutes in (15, 15, 30, 30):  # scanned twice at each step: nothing written twice
        at(clock, t0, minutes=minutes)
        await desk.scan()

    assert await desk.outbox() == [
        ("opened", 0, "ops-hook", "INC-000001:opened:opened"),
        ("opened", 0, "ops-slack", "INC-000001:opened:opened"),
        ("sla_breached", 0, "ops-hook", "INC-000001:sla_breached:response"),
        ("sla_breached", 0, "ops-slack", "INC-000001:sla_breached:response"),
        ("escalated", 1, "ops-hook", "INC-000001:escalated:1"),
        ("escalated", 2, "ops-hook", "INC-000001:escalated:2"),
        ("escalated", 2, "ops-teams", "INC-000001:escalated:2"),
    ]
    n = t.notifications.c
    async with desk.engines.read.connect() as conn:
        rows = (await conn.execute(select(n.payload, n.status, n.next_attempt_at).order_by(n.id))).all()
    escalated = json.loads(rows[-1].payload)
    assert (escalated["number"], escalated["escalation_level"], escalated["assigned_group"]) == (
        "INC-000001",
        2,
        "ops-managers",
    )
    assert escalated["sla"]["response_breached"] is True
    assert json.loads(rows[0].payload)["escalation_level"] == 0  # each row keeps the ticket as it was then
    assert {r.status for r in rows} == {"pending"}
    assert [r.next_attempt_at for r in rows] == [t0, t0, *[t0 + timedelta(minutes=15)] * 3, *[sat(3, 30)] * 2]


async def test_acknowledgement_stops_the_steps_and_the_response_clock(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=10)
    await desk.send(nagios(clock, Kind.ACKNOWLEDGE, actor="jdupont", comment="Purging /var/log/nginx"))

    at(clock, t0, hours=3, minutes=59)
    assert await desk.scan() == []
    ticket = await desk.ticket()
    assert pick(ticket, "status", "escalation_level", "next_escalation_at", "response_breached") == (
        "in_progress",
        0,
        None,
        False,
    )
    assert ticket["assigned_group"] == "storage"

    at(clock, t0, hours=4)  # the resolution clock keeps running
    assert await desk.scan() == [("sla_breached", "resolution")]
    assert await desk.kinds() == ["opened", "acknowledged", "sla_breached"]


async def test_acknowledgement_after_a_step_stops_the_next_ones(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=15)
    await desk.scan()
    at(clock, t0, minutes=20)
    await desk.send(nagios(clock, Kind.ACKNOWLEDGE, actor="oncall-l2:mmartin"))

    at(clock, t0, hours=2)
    assert await desk.scan() == []
    ticket = await desk.ticket()
    assert pick(ticket, "escalation_level", "assigned_group", "acknowledged_by") == (
        1,
        "oncall-l2",
        "oncall-l2:mmartin",
    )
    assert ticket["response_breached"] is True  # acknowledged late: the breach stays on record


async def test_resolve_stops_everything(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=10)
    await desk.send(nagios(clock, Kind.RECOVERY))

    at(clock, t0, hours=6)
    assert await desk.scan() == []
    ticket = await desk.ticket()
    assert pick(ticket, "status", "escalation_level", "next_escalation_at") == ("resolved", 0, None)
    assert pick(ticket, "response_breached", "resolution_breached") == (False, False)
    assert await desk.kinds() == ["opened", "resolved"]
    assert [event for event, *_ in await desk.outbox()] == ["opened", "opened", "resolved", "resolved"]


async def test_an_operator_resolving_stops_everything(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=15)
    await desk.scan()
    at(clock, t0, minutes=25)
    await desk.store.act(1, actions.resolve("mmartin"))

    at(clock, t0, hours=6)
    assert await desk.scan() == []
    assert pick(await desk.ticket(), "status", "escalation_level", "resolution_breached") == ("resolved", 1, False)
    assert (await desk.outbox())[-2:] == [
        ("resolved", 1, "ops-hook", "INC-000001:resolved:2026-03-14T03:25:00+00:00"),
        ("resolved", 1, "ops-slack", "INC-000001:resolved:2026-03-14T03:25:00+00:00"),
    ]


# --- severity rise -------------------------------------------------------------------------------------------------


async def test_severity_rise_pulls_the_deadlines_and_the_next_step_earlier(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.WARNING))
    warning = await desk.ticket()
    at(clock, t0, minutes=10)
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.CRITICAL))

    risen = await desk.ticket()
    # a warning on Saturday night waits for Monday's business hours (Europe/Paris, 08:00-18:00 CET)
    assert pick(warning, "priority", "respond_by", "next_escalation_at") == (
        "P4",
        datetime(2026, 3, 16, 15, tzinfo=UTC),
        datetime(2026, 3, 16, 11, tzinfo=UTC),
    )
    # critical counts from the rise, in wall-clock time
    assert pick(risen, "priority", "respond_by", "resolve_by", "next_escalation_at") == (
        "P1",
        sat(3, 25),
        sat(7, 10),
        sat(3, 25),
    )
    at(clock, t0, minutes=24, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, minutes=25)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]
    assert pick(await desk.ticket(), "escalation_level", "assigned_group") == (1, "oncall-l2")
    assert (await desk.history())[:2] == [
        ("Sat 03:00", "opened", "warning P4: DISK / on web-01 is WARNING"),
        ("Sat 03:10", "severity_raised", "warning → critical"),
    ]
    assert await desk.outbox() == [
        ("opened", 0, "ops-hook", "INC-000001:opened:opened"),
        ("severity_raised", 0, "ops-hook", "INC-000001:severity_raised:critical"),
        ("severity_raised", 0, "ops-slack", "INC-000001:severity_raised:critical"),
        ("sla_breached", 0, "ops-hook", "INC-000001:sla_breached:response"),
        ("sla_breached", 0, "ops-slack", "INC-000001:sla_breached:response"),
        ("escalated", 1, "ops-hook", "INC-000001:escalated:1"),
    ]


async def test_steps_after_a_late_severity_rise_count_from_the_rise(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.WARNING))
    at(clock, t0, hours=2)
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.CRITICAL))

    at(clock, t0, hours=2, minutes=15)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]
    at(clock, t0, hours=2, minutes=15, seconds=30)
    assert await desk.scan() == []  # level 2 is due 30 min after the rise, not 30 min after opening
    at(clock, t0, hours=2, minutes=30)
    assert await desk.scan() == [("escalated", "2")]
    at(clock, t0, hours=2, minutes=59, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, hours=3)
    assert await desk.scan() == [("escalated", "3")]


# --- pauses ---------------------------------------------------------------------------------------------------------


async def test_downtime_pauses_clocks_and_steps_and_pushes_them_by_the_time_suppressed(
    desk: Desk, clock: Clock
) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=5)
    await desk.send(nagios(clock, Kind.DOWNTIME_START, actor="mmartin", comment="Disk replacement, CHG0041"))

    at(clock, t0, hours=2)
    assert await desk.scan() == []
    assert pick(await desk.ticket(), "suppressed", "escalation_level", "response_breached") == (True, 0, False)

    at(clock, t0, hours=2, minutes=5)
    await desk.send(nagios(clock, Kind.DOWNTIME_END, actor="mmartin"))
    ticket = await desk.ticket()
    assert pick(ticket, "paused_seconds", "respond_by", "resolve_by", "next_escalation_at") == (
        2 * 3600,
        sat(5, 15),
        sat(9),
        sat(5, 15),
    )
    at(clock, t0, hours=2, minutes=14, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, hours=2, minutes=15)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]
    assert (await desk.ticket())["next_escalation_at"] == sat(5, 30)  # the next steps are pushed too
    at(clock, t0, hours=2, minutes=30)
    assert await desk.scan() == [("escalated", "2")]
    at(clock, t0, hours=2, minutes=59, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, hours=3)
    assert await desk.scan() == [("escalated", "3")]


async def test_waiting_pauses_clocks_and_steps_until_the_ticket_is_back(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=10)
    await desk.store.act(1, actions.set_status("jdupont", "waiting"))

    at(clock, t0, hours=1)
    assert await desk.scan() == []
    assert pick(await desk.ticket(), "status", "escalation_level", "response_breached", "resolution_breached") == (
        "waiting",
        0,
        False,
        False,
    )

    at(clock, t0, hours=1, minutes=10)
    await desk.store.act(1, actions.set_status("jdupont", "open"))
    assert pick(await desk.ticket(), "respond_by", "resolve_by", "next_escalation_at") == (
        sat(4, 15),
        sat(8),
        sat(4, 15),
    )
    at(clock, t0, hours=1, minutes=14, seconds=59)
    assert await desk.scan() == []
    at(clock, t0, hours=1, minutes=15)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]


async def test_flapping_keeps_escalating_and_holds_the_resolve_notification(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=5)
    await desk.send(nagios(clock, Kind.FLAPPING_START))
    at(clock, t0, minutes=8)
    await desk.send(nagios(clock, Kind.RECOVERY))

    at(clock, t0, minutes=15)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]
    assert pick(await desk.ticket(), "status", "flapping", "escalation_level") == ("open", True, 1)
    assert "resolved" not in [event for event, *_ in await desk.outbox()]

    at(clock, t0, minutes=40)
    await desk.send(nagios(clock, Kind.FLAPPING_STOP, problem_id=None, state_ok=True))
    assert pick(await desk.ticket(), "status", "flapping") == ("resolved", False)
    assert [event for event, *_ in await desk.outbox()] == [
        "opened",
        "opened",
        "sla_breached",
        "sla_breached",
        "escalated",
        "resolved",
        "resolved",
    ]


async def test_a_key_detected_flapping_comes_back_without_opened_or_resolved_notifications(
    desk: Desk, clock: Clock
) -> None:
    swap: dict[str, Any] = {
        "host": "app-02",
        "service": "Swap Usage",
        "severity": Severity.CRITICAL,
        "problem_id": None,
    }
    for _ in range(3):
        await desk.send(nagios(clock, Kind.PROBLEM, **swap))
        clock.advance(minutes=5)
        await desk.send(nagios(clock, Kind.RECOVERY, **swap))
        clock.advance(minutes=5)
    before = await desk.outbox()
    await desk.send(nagios(clock, Kind.PROBLEM, **swap))  # 03:30: the third ticket comes back, flapping
    clock.advance(minutes=2)
    await desk.send(nagios(clock, Kind.RECOVERY, **swap))

    assert [event for event, *_ in before] == ["opened", "opened", "resolved", "resolved"] * 3
    assert await desk.outbox() == before
    assert pick(await desk.ticket(3), "status", "flapping", "next_escalation_at") == ("open", True, sat(3, 35))
    at(clock, sat(3, 35))
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]


# --- business hours -------------------------------------------------------------------------------------------------


async def test_business_hours_take_a_friday_evening_deadline_to_monday(desk: Desk, clock: Clock) -> None:
    clock.current = datetime(2026, 3, 13, 16, 30, tzinfo=UTC)  # Friday 17:30 in Paris (CET)
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.WARNING))

    ticket = await desk.ticket()
    assert pick(ticket, "respond_by", "next_escalation_at", "resolve_by") == (
        datetime(2026, 3, 16, 14, 30, tzinfo=UTC),  # 30 min on Friday + 7 h 30 on Monday: 15:30 in Paris
        datetime(2026, 3, 16, 10, 30, tzinfo=UTC),  # the 4 h step: Monday 11:30 in Paris
        datetime(2026, 3, 20, 14, 30, tzinfo=UTC),  # 2d = 48 business hours: the next Friday 15:30 in Paris
    )
    for now in (datetime(2026, 3, 14, 3, tzinfo=UTC), datetime(2026, 3, 16, 10, 29, 59, tzinfo=UTC)):
        clock.current = now
        assert await desk.scan() == []
    clock.current = datetime(2026, 3, 16, 10, 30, tzinfo=UTC)
    assert await desk.scan() == [("escalated", "1")]
    clock.current = datetime(2026, 3, 16, 14, 30, tzinfo=UTC)
    assert await desk.scan() == [("sla_breached", "response")]
    assert (await desk.history())[1:] == [
        ("Mon 10:30", "escalated", "level 1: unacknowledged after 4:00:00, assigned to service-desk-l2"),
        ("Mon 14:30", "sla_breached", "response: not acknowledged by 2026-03-16 14:30:00Z"),
    ]


async def test_a_weekend_spent_waiting_costs_a_business_hours_ticket_only_the_business_time_paused(
    desk: Desk, clock: Clock
) -> None:
    clock.current = datetime(2026, 3, 13, 14, tzinfo=UTC)  # Friday 15:00 in Paris (CET)
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.WARNING))
    clock.current = datetime(2026, 3, 13, 16, tzinfo=UTC)  # Friday 17:00: waiting for the customer
    await desk.store.act(1, actions.set_status("jdupont", "waiting"))
    clock.current = datetime(2026, 3, 16, 8, tzinfo=UTC)  # Monday 09:00: back

    await desk.store.act(1, actions.set_status("jdupont", "open"))

    # 2 business hours were paused (Friday 17-18, Monday 8-9), not the 64 hours of the weekend
    assert pick(await desk.ticket(), "paused_seconds", "next_escalation_at", "respond_by", "resolve_by") == (
        2 * 3600,
        datetime(2026, 3, 16, 10, tzinfo=UTC),  # the 4 h step had 2 h left at 17:00 Friday: Monday 11:00 in Paris
        datetime(2026, 3, 16, 14, tzinfo=UTC),  # 8 h to respond, 6 h left: Monday 15:00 in Paris
        datetime(2026, 3, 20, 14, tzinfo=UTC),  # 48 business hours, 46 left: the next Friday 15:00 in Paris
    )
    clock.current = datetime(2026, 3, 16, 9, 59, 59, tzinfo=UTC)
    assert await desk.scan() == []
    clock.current = datetime(2026, 3, 16, 10, tzinfo=UTC)
    assert await desk.scan() == [("escalated", "1")]
    clock.current = datetime(2026, 3, 16, 14, tzinfo=UTC)
    assert await desk.scan() == [("sla_breached", "response")]


# --- reopen window ---------------------------------------------------------------------------------------------------


async def test_a_problem_within_the_reopen_window_brings_the_same_ticket_back(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(core_switch(clock, Kind.PROBLEM, "59313"))
    at(clock, t0, minutes=10)
    await desk.send(core_switch(clock, Kind.RECOVERY, "59313"))
    at(clock, t0, minutes=40)  # 30 min after the reset: still inside solarwinds/critical's window
    await desk.send(core_switch(clock, Kind.PROBLEM, "59327"))

    [ticket] = await desk.tickets()
    assert pick(ticket, "status", "resolved_at", "occurrences") == ("open", None, 2)
    assert await desk.history() == [
        ("Sat 03:00", "opened", "critical P1: Node is down on CORE-SW-01"),
        ("Sat 03:10", "resolved", "Node is down on CORE-SW-01"),
        ("Sat 03:40", "reopened", "a new problem within the reopen window"),
    ]

    at(clock, t0, minutes=50)
    await desk.send(core_switch(clock, Kind.RECOVERY, "59327"))
    at(clock, t0, hours=1, minutes=20, seconds=1)  # 30 min 1 s after: a new ticket
    await desk.send(core_switch(clock, Kind.PROBLEM, "59351"))
    first, second = await desk.tickets()
    assert pick(second, "status", "previous_ticket_id") == ("open", first["id"])


async def test_the_reopen_window_applies_only_where_the_policy_sets_it(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48213"))
    clock.advance(minutes=10)
    await desk.send(nagios(clock, Kind.RECOVERY, problem_id="48213"))
    clock.advance(minutes=1)
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48217"))

    first, second = await desk.tickets()
    assert first["status"] == "resolved"
    assert pick(second, "status", "previous_ticket_id") == ("open", first["id"])


async def test_by_default_a_problem_after_a_resolve_opens_a_new_ticket(engines: Engines, clock: Clock) -> None:
    desk = desk_for(engines, clock, Policy())
    await desk.send(core_switch(clock, Kind.PROBLEM, "59313"))
    clock.advance(minutes=10)
    await desk.send(core_switch(clock, Kind.RECOVERY, "59313"))
    clock.advance(seconds=1)
    await desk.send(core_switch(clock, Kind.PROBLEM, "59327"))

    first, second = await desk.tickets()
    assert (first["status"], second["status"], second["previous_ticket_id"]) == ("resolved", "open", first["id"])
    assert await desk.kinds(first["id"]) == ["opened", "resolved"]


# --- breaches and metrics ------------------------------------------------------------------------------------------


async def test_sla_breaches_set_flags_write_history_and_notify(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(zabbix(clock, Severity.MAJOR))
    at(clock, t0, minutes=30)
    assert await desk.scan() == [("sla_breached", "response")]
    at(clock, t0, minutes=35)
    await desk.store.act(1, actions.acknowledge("Thomas Leroy (tleroy)"))
    at(clock, t0, hours=8)
    assert await desk.scan() == [("sla_breached", "resolution")]

    ticket = await desk.ticket()
    assert pick(ticket, "response_breached", "resolution_breached", "escalation_level") == (True, True, 0)
    assert await desk.history() == [
        ("Sat 03:00", "opened", "major P2: High CPU utilization (over 90% for 5m)"),
        ("Sat 03:30", "sla_breached", "response: not acknowledged by 2026-03-14 03:30:00Z"),
        ("Sat 03:35", "acknowledged", ""),
        ("Sat 11:00", "sla_breached", "resolution: not resolved by 2026-03-14 11:00:00Z"),
    ]
    assert (await desk.outbox())[1:] == [
        ("sla_breached", 0, "ops-hook", "INC-000001:sla_breached:response"),
        ("sla_breached", 0, "ops-hook", "INC-000001:sla_breached:resolution"),
    ]


def background(desk: Desk, session: aiohttp.ClientSession, registry: CollectorRegistry, clock: Clock) -> Background:
    """The store's chores as `alertdesk run` wires them, their metrics in `registry`."""
    notifier = Notifier(desk.engines, POLICY, session, NotifyMetrics(registry), now=clock)
    return Background(desk.store, notifier, EscalationMetrics(registry), retention=timedelta(days=7))


async def test_escalations_and_breaches_are_counted_in_the_metrics(desk: Desk, clock: Clock) -> None:
    registry = CollectorRegistry()
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM), zabbix(clock, Severity.MAJOR))
    async with aiohttp.ClientSession() as session:
        chores = background(desk, session, registry, clock)
        for minutes in (15, 30, 45, 60):
            at(clock, t0, minutes=minutes)
            await chores.escalate()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert [value("alertdesk_escalations_total", level=str(n)) for n in (1, 2, 3)] == [2.0, 1.0, 1.0]
    assert value("alertdesk_sla_breaches_total", kind="response", severity="critical") == 1.0
    assert value("alertdesk_sla_breaches_total", kind="response", severity="major") == 1.0
    assert not value("alertdesk_sla_breaches_total", kind="resolution", severity="critical")  # not due before 07:00


async def test_the_tickets_gauge_counts_tickets_by_status_and_severity(desk: Desk, clock: Clock) -> None:
    registry = CollectorRegistry()
    await desk.send(nagios(clock, Kind.PROBLEM), zabbix(clock, Severity.MAJOR))
    await desk.send(nagios(clock, Kind.RECOVERY))
    async with aiohttp.ClientSession() as session:
        chores = background(desk, session, registry, clock)
        await chores.count_tickets()

    def tickets(status: str, severity: str) -> float | None:
        return registry.get_sample_value("alertdesk_tickets", {"status": status, "severity": severity})

    assert tickets("open", "major") == 1.0
    assert tickets("resolved", "critical") == 1.0
    assert tickets("open", "critical") == 0.0  # every series exists, at zero when nothing is in it


# --- restarts and several workers -----------------------------------------------------------------------------------


async def test_a_deadline_that_passes_while_stopped_fires_once_after_restart(
    database: tuple[str, str | None], engines: Engines, clock: Clock
) -> None:
    url, schema = database
    t0 = clock()
    desk = desk_for(engines, clock)
    await desk.send(nagios(clock, Kind.PROBLEM))
    await engines.dispose()  # the store worker stops before 03:15

    at(clock, t0, minutes=20)
    fired = []
    for _ in range(2):  # started again, and once more
        restarted = create_engines(url, schema=schema)
        try:
            fired.append(await desk.scan(TicketStore(restarted, Lifecycle(POLICY), now=clock)))
        finally:
            await restarted.dispose()

    assert fired == [[("sla_breached", "response"), ("escalated", "1")], []]
    assert (await desk.history())[1:] == [
        ("Sat 03:20", "sla_breached", "response: not acknowledged by 2026-03-14 03:15:00Z"),
        ("Sat 03:20", "escalated", "level 1: unacknowledged after 0:15:00, assigned to oncall-l2"),
    ]
    assert [key for *_, key in await desk.outbox()].count("INC-000001:escalated:1") == 1


ON_POSTGRES = pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@ON_POSTGRES
async def test_two_workers_racing_on_due_tickets_fire_each_step_once(
    database: tuple[str, str | None], engines: Engines, clock: Clock
) -> None:
    url, schema = database
    other = create_engines(url, schema=schema)
    desk = desk_for(engines, clock)
    workers = (desk.store, TicketStore(other, Lifecycle(POLICY), now=clock))
    hosts = [f"web-{n:02d}" for n in range(1, 21)]
    t0 = clock()
    try:
        await desk.send(*(nagios(clock, Kind.PROBLEM, host=host) for host in hosts))
        fired: list[tuple[str, str]] = []
        for minutes in (15, 30, 60):
            at(clock, t0, minutes=minutes)
            for _ in range(5):
                rounds = await asyncio.gather(*(desk.scan(worker) for worker in workers * 4))
                fired += [event for found in rounds for event in found]
    finally:
        await other.dispose()

    assert sorted(fired) == sorted(
        [("escalated", "1"), ("escalated", "2"), ("escalated", "3")] * 20 + [("sla_breached", "response")] * 20
    )
    for ticket in await desk.tickets():
        assert ticket["escalation_level"] == 3
        assert (await desk.kinds(ticket["id"])).count("escalated") == 3
        assert [(e, lv, ch) for e, lv, ch, _ in await desk.outbox(ticket["id"]) if e == "escalated"] == [
            ("escalated", 1, "ops-hook"),
            ("escalated", 2, "ops-hook"),
            ("escalated", 2, "ops-teams"),
            ("escalated", 3, "ops-teams"),
        ]


async def _until_waiting_on(engines: Engines, table: str) -> None:
    """Wait until some transaction is blocked on a lock of `table` (of this test's schema)."""
    query = text("SELECT count(*) FROM pg_locks WHERE relation = CAST(:table AS regclass) AND NOT granted")
    for _ in range(1000):
        async with engines.read.connect() as conn:
            if (await conn.execute(query, {"table": table})).scalar_one():
                return
        await asyncio.sleep(0.005)
    raise AssertionError(f"nobody waited on {table}")


@ON_POSTGRES
async def test_an_acknowledgement_in_flight_at_the_deadline_wins(
    database: tuple[str, str | None], engines: Engines, clock: Clock
) -> None:
    url, schema = database
    other = create_engines(url, schema=schema)
    desk = desk_for(engines, clock)
    scanner = TicketStore(other, Lifecycle(POLICY), now=clock)
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=15)  # the response deadline and level 1 are due, and jdupont acknowledges
    try:
        async with engines.write.connect() as holder:
            # hold the acknowledgement mid-transaction: it has locked the ticket and waits to write its history
            await holder.execute(text("LOCK TABLE ticket_history IN SHARE MODE"))
            ack = asyncio.create_task(desk.store.act(1, actions.acknowledge("jdupont")))
            await _until_waiting_on(other, "ticket_history")
            assert await asyncio.wait_for(desk.scan(scanner), timeout=10) == []
            await holder.rollback()
        await ack
        assert await desk.scan(scanner) == []
    finally:
        await other.dispose()

    ticket = await desk.ticket()
    assert pick(ticket, "status", "acknowledged_by", "escalation_level", "response_breached") == (
        "in_progress",
        "jdupont",
        0,
        False,
    )
    assert await desk.kinds() == ["opened", "acknowledged"]


@ON_POSTGRES
async def test_acknowledgements_racing_the_scanners_never_see_a_step_fire_after_them(
    database: tuple[str, str | None], engines: Engines, clock: Clock
) -> None:
    url, schema = database
    other = create_engines(url, schema=schema)
    desk = desk_for(engines, clock)
    scanners = (desk.store, TicketStore(other, Lifecycle(POLICY), now=clock))
    t0 = clock()
    try:
        await desk.send(*(nagios(clock, Kind.PROBLEM, host=f"web-{n:02d}") for n in range(1, 21)))
        at(clock, t0, minutes=15)
        acks = [desk.store.act(n, actions.acknowledge("jdupont")) for n in range(1, 21)]
        await asyncio.gather(*acks, *(desk.scan(s) for s in scanners * 3))
        for minutes in (30, 60, 240):
            at(clock, t0, minutes=minutes)
            await asyncio.gather(*(desk.scan(s) for s in scanners))
    finally:
        await other.dispose()

    for ticket in await desk.tickets():
        kinds = await desk.kinds(ticket["id"])
        # either the ack came first, or level 1 (with the breach) committed before it; never a step after it
        assert kinds in (
            ["opened", "acknowledged", "sla_breached"],
            ["opened", "sla_breached", "escalated", "acknowledged", "sla_breached"],
        ), kinds
        assert pick(ticket, "status", "acknowledged_by") == ("in_progress", "jdupont")
        assert ticket["escalation_level"] == kinds.count("escalated")
        assert ticket["response_breached"] is ("escalated" in kinds)


async def test_each_event_can_be_routed_to_its_own_channels(engines: Engines, clock: Clock) -> None:
    policy = POLICY.model_copy(
        update={
            "severities": {
                **POLICY.severities,
                Severity.CRITICAL: POLICY.severities[Severity.CRITICAL].model_copy(
                    update={"notify": {"opened": ("ops-slack",), "resolved": ("ops-hook", "ops-teams")}}
                ),
            }
        }
    )
    desk = desk_for(engines, clock, policy)
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    at(clock, t0, minutes=16)
    await desk.scan()  # the response breach is not routed anywhere: no notification for it
    await desk.send(nagios(clock, Kind.RECOVERY))

    assert [(event, channel) for event, _, channel, _ in await desk.outbox()] == [
        ("opened", "ops-slack"),
        ("escalated", "ops-hook"),
        ("resolved", "ops-hook"),
        ("resolved", "ops-teams"),
    ]


def test_per_event_routing_names_only_known_events_and_channels() -> None:
    base = "channels: {hook: {type: webhook, url: 'https://h.example'}}\nseverities:\n  critical:\n    priority: P1\n"
    Policy.model_validate(yaml.safe_load(base + "    notify: {opened: [hook], resolved: [hook]}\n"))
    with pytest.raises(ValueError, match="unknown channel"):
        Policy.model_validate(yaml.safe_load(base + "    notify: {opened: [pager]}\n"))
    with pytest.raises(ValueError, match="reopened"):
        Policy.model_validate(yaml.safe_load(base + "    notify: {reopened: [hook]}\n"))
