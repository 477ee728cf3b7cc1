"""CONTRACT §2, row by row: what each event does to its key's tickets, as a user reads them back.

Every test goes the way production goes — `fold`, then `TicketStore.apply_batch` — on SQLite and on the
machine's PostgreSQL, and asserts the stored rows: status, counts, severities, flags, links and history.
Each `send` is one batch (one transaction), as one fold window would be; the clock is moved by hand.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import RowMapping, select

from dedup.fold import fold
from normalizers.schema import Alert, Kind, Severity, Source, UpdateAction
from tests.conftest import Clock
from ticketstore import tables as t
from ticketstore.db import Engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.policy import Policy
from ticketstore.store import Applied, TicketStore

WEB_DISK = "nagios:web-01/DISK /"
SWAP = "nagios:app-02/Swap Usage"
CPU_TITLE = "High CPU utilization (over 90% for 5m)"
OUTPUT = {
    WEB_DISK: "DISK CRITICAL - free space: / 1843 MB (4.6% inode=71%):",
    SWAP: "SWAP WARNING - 18% free (737 MB out of 4095 MB)",
}


def nagios(
    clock: Clock,
    kind: Kind,
    *,
    key: str = WEB_DISK,
    problem_id: str | None = "48213",
    severity: Severity | None = Severity.CRITICAL,
    **extra: Any,
) -> Alert:
    """A Nagios notification for `DISK /` on web-01 (or `key`), received now."""
    host, _, service = key.removeprefix("nagios:").partition("/")
    ok = kind is Kind.RECOVERY or extra.get("state_ok") is True
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.NAGIOS,
        dedup_key=key,
        kind=kind,
        severity=None if ok else severity,
        episode_id=problem_id,
        host=host,
        service=service,
        title=f"{service} on {host} is {'OK' if ok else 'CRITICAL'}",
        description="" if ok else OUTPUT[key],
        source_refs={"problem_id": problem_id or "0"},
        received_at=clock(),
        **extra,
    )


def swap(clock: Clock, kind: Kind, **extra: Any) -> Alert:
    """app-02's swap, the service that flaps: warning, and no problem id (the macro is not expanded)."""
    return nagios(clock, kind, key=SWAP, problem_id=None, severity=Severity.WARNING, **extra)


def zabbix(
    clock: Clock,
    kind: Kind,
    *,
    event_id: str | None = "48213977",
    severity: Severity | None = Severity.WARNING,
    **extra: Any,
) -> Alert:
    """A Zabbix notification of trigger 23714 (CPU of db-paris-02), received now."""
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.ZABBIX,
        dedup_key="zabbix:trigger/23714",
        kind=kind,
        severity=severity,
        episode_id=event_id,
        host="db-paris-02",
        title=CPU_TITLE,
        description="CPU utilization is too high. The system might be slow to respond.",
        source_refs={"event_id": event_id or ""},
        received_at=clock(),
        **extra,
    )


def update(clock: Clock, *actions: UpdateAction, **extra: Any) -> Alert:
    """A Zabbix problem update by an operator."""
    extra.setdefault("actor", "Thomas Leroy (tleroy)")
    return zabbix(clock, Kind.UPDATE, actions=actions, **extra)


@dataclass
class Desk:
    """The store as the pipeline drives it, and the tickets as a user reads them back."""

    store: TicketStore
    engines: Engines

    async def send(self, *alerts: Alert) -> list[Applied]:
        """One batch, folded as dedup folds it."""
        return await self.store.apply_batch(fold(alerts))

    async def tickets(self) -> list[RowMapping]:
        async with self.engines.read.connect() as conn:
            return [r._mapping for r in await conn.execute(select(t.tickets).order_by(t.tickets.c.id))]

    async def ticket(self) -> RowMapping:
        """The one ticket there must be."""
        rows = await self.tickets()
        assert len(rows) == 1, f"expected one ticket, found {len(rows)}"
        return rows[0]

    async def history(self, ticket_id: int) -> list[tuple[str, str]]:
        """(kind, detail) of a ticket's history, in order."""
        h = t.history.c
        async with self.engines.read.connect() as conn:
            rows = await conn.execute(select(h.kind, h.detail).where(h.ticket_id == ticket_id).order_by(h.id))
            return [(r.kind, r.detail) for r in rows]

    async def kinds(self, ticket_id: int) -> list[str]:
        return [kind for kind, _ in await self.history(ticket_id)]


@pytest.fixture
def desk(engines: Engines, clock: Clock) -> Desk:
    return Desk(TicketStore(engines, Lifecycle(Policy()), now=clock, cache=True), engines)  # as `alertdesk run`


def pick(row: RowMapping, *names: str) -> tuple[Any, ...]:
    return tuple(row[name] for name in names)


# --- problem ----------------------------------------------------------------------------------------------


async def test_problem_opens_a_ticket_with_the_deadlines_of_its_severity(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    [applied] = await desk.send(nagios(clock, Kind.PROBLEM))

    ticket = await desk.ticket()
    assert applied.opened and applied.ticket_id == ticket["id"]
    assert pick(ticket, "status", "severity", "peak_severity", "priority") == ("open", "critical", "critical", "P1")
    assert pick(ticket, "occurrences", "first_seen", "last_seen") == (1, t0, t0)
    assert pick(ticket, "respond_by", "resolve_by") == (t0 + timedelta(minutes=15), t0 + timedelta(hours=4))
    assert pick(ticket, "suppressed", "flapping", "previous_ticket_id") == (False, False, None)
    assert await desk.kinds(ticket["id"]) == ["opened"]


async def test_repeats_in_one_batch_fold_into_one_ticket(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    repeats = []
    for _ in range(3):
        repeats.append(nagios(clock, Kind.PROBLEM))
        clock.advance(minutes=5)

    await desk.send(*repeats)

    ticket = await desk.ticket()
    assert pick(ticket, "occurrences", "first_seen", "last_seen") == (3, t0, t0 + timedelta(minutes=10))
    assert await desk.kinds(ticket["id"]) == ["opened"]


async def test_repeats_across_batches_count_occurrences_and_set_last_seen(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    clock.advance(minutes=5)
    await desk.send(nagios(clock, Kind.PROBLEM), nagios(clock, Kind.PROBLEM))
    last = clock.advance(minutes=5)
    await desk.send(nagios(clock, Kind.PROBLEM))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "occurrences", "first_seen", "last_seen") == ("open", 4, t0, last)


async def test_severity_follows_the_latest_problem_but_peak_and_priority_never_drop(desk: Desk, clock: Clock) -> None:
    for severity in (Severity.WARNING, Severity.CRITICAL, Severity.MINOR):
        await desk.send(nagios(clock, Kind.PROBLEM, severity=severity))
        clock.advance(minutes=10)

    ticket = await desk.ticket()
    assert pick(ticket, "severity", "peak_severity", "priority") == ("minor", "critical", "P1")
    assert await desk.history(ticket["id"]) == [
        ("opened", "warning P4: DISK / on web-01 is CRITICAL"),
        ("severity_raised", "warning → critical"),
        ("severity_lowered", "critical → minor"),
    ]


async def test_folded_run_that_peaked_opens_with_the_peak_priority(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    run = []
    for severity in (Severity.WARNING, Severity.CRITICAL, Severity.WARNING):
        run.append(nagios(clock, Kind.PROBLEM, severity=severity))
        clock.advance(minutes=1)

    await desk.send(*run)

    ticket = await desk.ticket()
    assert pick(ticket, "severity", "peak_severity", "priority") == ("warning", "critical", "P1")
    assert ticket["respond_by"] == t0 + timedelta(minutes=15)


async def test_severity_rise_moves_deadlines_earlier(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.WARNING))
    risen = clock.advance(minutes=10)
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.CRITICAL))

    ticket = await desk.ticket()
    assert pick(ticket, "priority", "respond_by", "resolve_by") == (
        "P1",
        risen + timedelta(minutes=15),
        risen + timedelta(hours=4),
    )


async def test_severity_rise_keeps_a_deadline_that_is_already_earlier(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.MINOR))
    risen = clock.advance(hours=3, minutes=50)
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.MAJOR))

    ticket = await desk.ticket()
    assert ticket["priority"] == "P2"
    assert ticket["respond_by"] == t0 + timedelta(hours=4)  # minor's 4 h beats 3 h 50 + major's 30 min
    assert ticket["resolve_by"] == risen + timedelta(hours=8)  # major's 8 h beats minor's 24 h


async def test_severity_drop_keeps_the_deadlines(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.CRITICAL))
    clock.advance(minutes=5)
    await desk.send(nagios(clock, Kind.PROBLEM, severity=Severity.WARNING))

    ticket = await desk.ticket()
    assert pick(ticket, "respond_by", "resolve_by") == (t0 + timedelta(minutes=15), t0 + timedelta(hours=4))


# --- recovery ---------------------------------------------------------------------------------------------


async def test_recovery_resolves_the_active_ticket(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM))
    recovered = clock.advance(minutes=12)
    [applied] = await desk.send(nagios(clock, Kind.RECOVERY))

    ticket = await desk.ticket()
    assert applied.resolved
    assert pick(ticket, "status", "resolved_at", "occurrences") == ("resolved", recovered, 1)
    assert await desk.kinds(ticket["id"]) == ["opened", "resolved"]


async def test_recovery_without_a_ticket_is_accepted_and_changes_nothing(desk: Desk, clock: Clock) -> None:
    [applied] = await desk.send(nagios(clock, Kind.RECOVERY))

    assert (applied.ticket_id, applied.dead_letter) == (None, None)
    assert await desk.tickets() == []


async def test_recovery_after_the_ticket_resolved_changes_nothing(desk: Desk, clock: Clock) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM))
    clock.advance(minutes=3)
    await desk.send(zabbix(clock, Kind.RECOVERY))
    resolved = await desk.ticket()
    clock.advance(minutes=3)
    await desk.send(zabbix(clock, Kind.RECOVERY, event_id=None))  # one that names no event

    assert await desk.ticket() == resolved
    assert await desk.kinds(resolved["id"]) == ["opened", "resolved"]


async def test_new_problem_after_resolve_opens_a_new_ticket_linked_to_the_previous(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48213"))
    clock.advance(minutes=20)
    await desk.send(nagios(clock, Kind.RECOVERY, problem_id="48213"))
    again = clock.advance(hours=2)
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48290"))

    first, second = await desk.tickets()
    assert first["status"] == "resolved"
    assert pick(second, "status", "occurrences", "first_seen") == ("open", 1, again)
    assert second["previous_ticket_id"] == first["id"]
    assert await desk.kinds(first["id"]) == ["opened", "resolved"]


async def test_recovery_and_new_problem_in_one_batch_open_a_new_ticket(desk: Desk, clock: Clock) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM, event_id="48213977"))
    clock.advance(minutes=2)
    recovery = zabbix(clock, Kind.RECOVERY, event_id="48213977")
    clock.advance(minutes=2)
    await desk.send(recovery, zabbix(clock, Kind.PROBLEM, event_id="48214102"))

    first, second = await desk.tickets()
    assert (first["status"], second["status"]) == ("resolved", "open")
    assert second["previous_ticket_id"] == first["id"]


# --- acknowledgement, updates, annotations ----------------------------------------------------------------


async def test_acknowledgement_puts_the_ticket_in_progress(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM))
    acked = clock.advance(minutes=4)
    await desk.send(nagios(clock, Kind.ACKNOWLEDGE, actor="jdupont", comment="Rotating /var/log/nginx now"))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "acknowledged_by", "acknowledged_at") == ("in_progress", "jdupont", acked)
    assert (await desk.history(ticket["id"]))[-1] == ("acknowledged", "Rotating /var/log/nginx now")


async def test_acknowledgement_without_an_active_ticket_does_nothing(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.ACKNOWLEDGE, actor="jdupont"))
    assert await desk.tickets() == []

    await desk.send(swap(clock, Kind.PROBLEM))
    await desk.send(swap(clock, Kind.RECOVERY))
    await desk.send(swap(clock, Kind.ACKNOWLEDGE, actor="jdupont"))

    assert pick(await desk.ticket(), "status", "acknowledged_by") == ("resolved", None)


async def test_zabbix_update_applies_each_action_in_order(desk: Desk, clock: Clock) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM, severity=Severity.MINOR))
    clock.advance(minutes=6)
    note = "Backup job overlapping with the nightly vacuum"
    actions = (UpdateAction.ACKNOWLEDGED, UpdateAction.COMMENTED, UpdateAction.SEVERITY_CHANGED)
    await desk.send(update(clock, *actions, severity=Severity.MAJOR, comment=note))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "acknowledged_by", "occurrences") == ("in_progress", "Thomas Leroy (tleroy)", 1)
    assert pick(ticket, "severity", "peak_severity", "priority") == ("major", "major", "P2")
    assert await desk.history(ticket["id"]) == [
        ("opened", f"minor P3: {CPU_TITLE}"),
        ("acknowledged", note),
        ("comment", note),
        ("severity_raised", "changed severity to major"),
    ]

    closed = clock.advance(minutes=30)
    await desk.send(update(clock, UpdateAction.COMMENTED, UpdateAction.CLOSED, comment="Vacuum moved to 02:00"))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "resolved_at") == ("resolved", closed)
    assert (await desk.kinds(ticket["id"]))[-2:] == ["comment", "resolved"]


async def test_zabbix_unacknowledge_puts_the_ticket_back_to_open(desk: Desk, clock: Clock) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM))
    clock.advance(minutes=3)
    await desk.send(update(clock, UpdateAction.ACKNOWLEDGED))
    clock.advance(minutes=3)
    await desk.send(update(clock, UpdateAction.UNACKNOWLEDGED))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "acknowledged_by", "acknowledged_at") == ("open", None, None)
    assert await desk.kinds(ticket["id"]) == ["opened", "acknowledged", "unacknowledged"]


async def test_zabbix_suppress_and_unsuppress_set_the_flag(desk: Desk, clock: Clock) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM))
    clock.advance(minutes=1)
    await desk.send(update(clock, UpdateAction.SUPPRESSED, comment="Suppressed until 2026.03.14 06:00"))
    suppressed = await desk.ticket()
    clock.advance(minutes=30)
    await desk.send(update(clock, UpdateAction.UNSUPPRESSED))

    ticket = await desk.ticket()
    assert pick(suppressed, "suppressed", "status") == (True, "open")
    assert pick(ticket, "suppressed", "status") == (False, "open")
    assert await desk.kinds(ticket["id"]) == ["opened", "suppressed", "unsuppressed"]


async def test_update_or_comment_without_a_ticket_changes_nothing(desk: Desk, clock: Clock) -> None:
    await desk.send(update(clock, UpdateAction.ACKNOWLEDGED, UpdateAction.COMMENTED, comment="on it"))
    await desk.send(update(clock, UpdateAction.UNACKNOWLEDGED, event_id="48209310"))
    await desk.send(update(clock, UpdateAction.CLOSED, event_id="48209310"))
    await desk.send(nagios(clock, Kind.COMMENT, actor="nagiosadmin", comment="Vendor case 88213 opened"))

    assert await desk.tickets() == []


async def test_custom_notification_only_adds_history(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM))
    before = await desk.ticket()
    clock.advance(minutes=2)
    await desk.send(nagios(clock, Kind.COMMENT, actor="nagiosadmin", comment="Vendor case 88213 opened"))

    assert await desk.ticket() == before
    assert (await desk.history(before["id"]))[-1] == ("comment", "Vendor case 88213 opened")


async def test_zabbix_comment_and_ranking_only_add_history(desk: Desk, clock: Clock) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM))
    before = await desk.ticket()
    clock.advance(minutes=2)
    await desk.send(update(clock, UpdateAction.COMMENTED, comment="Looks like the ETL batch again"))
    clock.advance(minutes=2)
    await desk.send(update(clock, UpdateAction.RANKED))

    assert await desk.ticket() == before
    assert (await desk.history(before["id"]))[1:] == [
        ("comment", "Looks like the ETL batch again"),
        ("update", "ranked"),
    ]


async def test_comment_on_a_resolved_episode_is_kept_on_its_ticket(desk: Desk, clock: Clock) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM))
    clock.advance(minutes=5)
    await desk.send(zabbix(clock, Kind.RECOVERY))
    before = await desk.ticket()
    clock.advance(minutes=5)
    await desk.send(update(clock, UpdateAction.COMMENTED, comment="Root cause: runaway ETL batch"))

    assert await desk.ticket() == before
    kind, detail = (await desk.history(before["id"]))[-1]
    assert kind == "late_event" and detail.endswith("Root cause: runaway ETL batch")


async def test_only_problems_count_as_occurrences(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM))
    events: list[tuple[Kind, dict[str, Any]]] = [
        (Kind.ACKNOWLEDGE, {"actor": "jdupont"}),
        (Kind.COMMENT, {"comment": "Disk cleanup scheduled"}),
        (Kind.DOWNTIME_START, {"actor": "mmartin"}),
        (Kind.DOWNTIME_END, {"actor": "mmartin"}),
        (Kind.FLAPPING_START, {}),
        (Kind.FLAPPING_STOP, {"state_ok": False}),
        (Kind.PROBLEM, {}),
        (Kind.RECOVERY, {}),
    ]
    for kind, extra in events:
        clock.advance(minutes=1)
        await desk.send(nagios(clock, kind, **extra))

    assert pick(await desk.ticket(), "occurrences", "status") == (2, "resolved")


# --- Nagios problem ids, Zabbix events ---------------------------------------------------------------------


async def test_nagios_problem_with_another_problem_id_supersedes_the_active_ticket(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48213"))
    superseded = clock.advance(minutes=40)
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48290"))

    old, new = await desk.tickets()
    assert pick(old, "status", "resolved_at") == ("resolved", superseded)
    kind, detail = (await desk.history(old["id"]))[-1]
    assert kind == "resolved" and "superseded" in detail
    assert pick(new, "status", "occurrences", "previous_ticket_id") == ("open", 1, old["id"])


async def test_nagios_supersede_inside_one_batch(desk: Desk, clock: Clock) -> None:
    first = nagios(clock, Kind.PROBLEM, problem_id="48213")
    clock.advance(minutes=40)
    await desk.send(first, nagios(clock, Kind.PROBLEM, problem_id="48290"))

    old, new = await desk.tickets()
    assert (old["status"], new["status"], new["previous_ticket_id"]) == ("resolved", "open", old["id"])


async def test_nagios_problem_without_a_problem_id_counts_on_the_active_ticket(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48213"))
    clock.advance(minutes=5)
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id=None))

    assert pick(await desk.ticket(), "status", "occurrences") == ("open", 2)


async def test_zabbix_events_of_one_trigger_share_a_ticket_and_the_first_recovery_resolves(
    desk: Desk, clock: Clock
) -> None:
    await desk.send(zabbix(clock, Kind.PROBLEM, event_id="48213977"))
    clock.advance(minutes=5)
    await desk.send(zabbix(clock, Kind.PROBLEM, event_id="48214102"))
    resolved = clock.advance(minutes=5)
    await desk.send(zabbix(clock, Kind.RECOVERY, event_id="48213977"))
    clock.advance(minutes=5)
    await desk.send(zabbix(clock, Kind.RECOVERY, event_id="48214102"))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "occurrences", "resolved_at") == ("resolved", 2, resolved)
    assert await desk.kinds(ticket["id"]) == ["opened", "resolved", "late_event"]


# --- late events --------------------------------------------------------------------------------------------


async def test_late_problem_of_a_resolved_episode_does_not_open_a_ticket(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48213"))
    clock.advance(minutes=8)
    await desk.send(nagios(clock, Kind.RECOVERY, problem_id="48213"))
    before = await desk.ticket()
    clock.advance(minutes=1)
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48213"))  # a re-notification, delivered late

    assert await desk.ticket() == before
    assert (await desk.history(before["id"]))[-1] == ("late_event", "problem for episode 48213: ticket not changed")


async def test_late_event_lands_on_its_own_ticket_not_on_the_active_one(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48213"))
    clock.advance(minutes=30)
    await desk.send(nagios(clock, Kind.RECOVERY, problem_id="48213"))
    clock.advance(minutes=30)
    await desk.send(nagios(clock, Kind.PROBLEM, problem_id="48290"))
    before = await desk.tickets()
    clock.advance(minutes=1)
    await desk.send(nagios(clock, Kind.ACKNOWLEDGE, problem_id="48213", actor="jdupont"))
    await desk.send(nagios(clock, Kind.RECOVERY, problem_id="48213"))

    old, new = await desk.tickets()
    assert [old, new] == before
    assert await desk.kinds(old["id"]) == ["opened", "resolved", "late_event", "late_event"]
    assert await desk.kinds(new["id"]) == ["opened"]


# --- flapping ----------------------------------------------------------------------------------------------


async def flap(desk: Desk, clock: Clock, cycles: int = 3, gap: timedelta = timedelta(0)) -> None:
    """`cycles` open/resolve cycles of app-02's swap, 5 minutes each way, `gap` between cycles."""
    for _ in range(cycles):
        await desk.send(swap(clock, Kind.PROBLEM))
        clock.advance(minutes=5)
        await desk.send(swap(clock, Kind.RECOVERY))
        clock.advance(minutes=5, seconds=gap.total_seconds())


async def test_third_cycle_within_an_hour_brings_the_latest_ticket_back_flapping(desk: Desk, clock: Clock) -> None:
    await flap(desk, clock)
    await desk.send(swap(clock, Kind.PROBLEM))

    rows = await desk.tickets()
    latest = rows[-1]
    assert len(rows) == 3
    assert pick(latest, "status", "flapping", "resolved_at", "occurrences") == ("open", True, None, 2)
    assert await desk.history(latest["id"]) == [
        ("opened", "warning P4: Swap Usage on app-02 is CRITICAL"),
        ("resolved", "Swap Usage on app-02 is OK"),
        ("reopened", "3 open/resolve cycles within 1:00:00"),
        ("flapping_started", "detected by alertdesk: recoveries are recorded without resolving"),
        ("problem", "problem while flapping"),
    ]


async def test_cycles_spread_over_more_than_an_hour_are_not_flapping(desk: Desk, clock: Clock) -> None:
    await flap(desk, clock, gap=timedelta(minutes=25))
    await desk.send(swap(clock, Kind.PROBLEM))

    rows = await desk.tickets()
    assert len(rows) == 4
    assert pick(rows[-1], "status", "flapping") == ("open", False)


async def test_while_flapping_recoveries_and_problems_neither_resolve_nor_open(desk: Desk, clock: Clock) -> None:
    await flap(desk, clock)
    await desk.send(swap(clock, Kind.PROBLEM))
    for kind in (Kind.RECOVERY, Kind.PROBLEM, Kind.RECOVERY):
        clock.advance(minutes=3)
        await desk.send(swap(clock, kind))

    rows = await desk.tickets()
    latest = rows[-1]
    assert len(rows) == 3
    assert pick(latest, "status", "flapping", "occurrences") == ("open", True, 3)
    assert (await desk.kinds(latest["id"]))[-3:] == ["recovery", "problem", "recovery"]


async def test_flapping_settles_after_a_quiet_half_hour_and_ok_resolves(desk: Desk, clock: Clock) -> None:
    await flap(desk, clock)
    await desk.send(swap(clock, Kind.PROBLEM))
    clock.advance(minutes=2)
    await desk.send(swap(clock, Kind.RECOVERY))

    clock.advance(minutes=29, seconds=59)
    assert await desk.store.settle_flapping() == 0
    assert (await desk.tickets())[-1]["flapping"] is True

    settled = clock.advance(seconds=1)
    assert await desk.store.settle_flapping() == 1

    latest = (await desk.tickets())[-1]
    assert pick(latest, "status", "flapping", "resolved_at") == ("resolved", False, settled)
    assert (await desk.kinds(latest["id"]))[-2:] == ["flapping_stopped", "resolved"]


async def test_flapping_settled_in_problem_state_stays_open(desk: Desk, clock: Clock) -> None:
    await flap(desk, clock)
    await desk.send(swap(clock, Kind.PROBLEM))
    clock.advance(minutes=45)
    assert await desk.store.settle_flapping() == 1

    assert pick((await desk.tickets())[-1], "status", "flapping") == ("open", False)


async def test_event_after_the_quiet_period_settles_flapping_first(desk: Desk, clock: Clock) -> None:
    await flap(desk, clock)
    await desk.send(swap(clock, Kind.PROBLEM))
    clock.advance(minutes=40)
    await desk.send(swap(clock, Kind.RECOVERY))

    assert pick((await desk.tickets())[-1], "status", "flapping") == ("resolved", False)


async def test_problem_after_flapping_settled_in_ok_opens_a_new_ticket(desk: Desk, clock: Clock) -> None:
    await flap(desk, clock)
    await desk.send(swap(clock, Kind.PROBLEM))
    clock.advance(minutes=2)
    await desk.send(swap(clock, Kind.RECOVERY))
    failed_again = clock.advance(minutes=40)
    await desk.send(swap(clock, Kind.PROBLEM))

    rows = await desk.tickets()
    settled, new = rows[-2:]
    assert len(rows) == 4
    assert pick(settled, "status", "flapping", "resolved_at") == ("resolved", False, failed_again)
    assert pick(new, "status", "flapping", "previous_ticket_id") == ("open", False, settled["id"])


async def test_nagios_flapping_start_and_stop_set_and_clear_the_flag(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, key=SWAP, problem_id="48270"))
    clock.advance(minutes=10)
    await desk.send(nagios(clock, Kind.FLAPPING_START, key=SWAP, problem_id="48270"))
    started = await desk.ticket()
    clock.advance(minutes=2)
    await desk.send(nagios(clock, Kind.RECOVERY, key=SWAP, problem_id="48270"))
    recovered = await desk.ticket()
    clock.advance(minutes=10)
    await desk.send(nagios(clock, Kind.FLAPPING_STOP, key=SWAP, problem_id="48275", state_ok=False))

    ticket = await desk.ticket()
    assert pick(started, "status", "flapping") == ("open", True)
    assert pick(recovered, "status", "flapping") == ("open", True)
    assert pick(ticket, "status", "flapping") == ("open", False)
    assert await desk.kinds(ticket["id"]) == ["opened", "flapping_started", "recovery", "flapping_stopped"]


async def test_nagios_flapping_stop_in_ok_state_resolves(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM, key=SWAP, problem_id="48270"))
    clock.advance(minutes=10)
    await desk.send(nagios(clock, Kind.FLAPPING_START, key=SWAP, problem_id="48270"))
    stopped = clock.advance(minutes=25)
    await desk.send(nagios(clock, Kind.FLAPPING_STOP, key=SWAP, problem_id=None, state_ok=True))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "flapping", "resolved_at") == ("resolved", False, stopped)
    assert await desk.kinds(ticket["id"]) == ["opened", "flapping_started", "flapping_stopped", "resolved"]


async def test_nagios_flapping_without_an_active_ticket_does_nothing(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.FLAPPING_START, key=SWAP, problem_id="48270"))
    await desk.send(nagios(clock, Kind.FLAPPING_STOP, key=SWAP, problem_id=None, state_ok=True))

    assert await desk.tickets() == []


# --- downtime ----------------------------------------------------------------------------------------------


async def test_downtime_suppresses_and_never_resolves(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.PROBLEM))
    clock.advance(minutes=5)
    await desk.send(nagios(clock, Kind.DOWNTIME_START, actor="mmartin", comment="Disk replacement, CHG0041"))
    during = await desk.ticket()
    clock.advance(hours=1)
    await desk.send(nagios(clock, Kind.DOWNTIME_END, actor="mmartin"))

    ticket = await desk.ticket()
    assert pick(during, "suppressed", "status") == (True, "open")
    assert pick(ticket, "suppressed", "status", "resolved_at") == (False, "open", None)
    assert (await desk.history(ticket["id"]))[1:] == [
        ("suppressed", "Disk replacement, CHG0041"),
        ("unsuppressed", "downtime end"),
    ]


async def test_downtime_pushes_the_deadlines_by_the_time_suppressed(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(nagios(clock, Kind.PROBLEM))
    clock.advance(minutes=5)
    await desk.send(nagios(clock, Kind.DOWNTIME_START, actor="mmartin"))
    clock.advance(minutes=90)
    await desk.send(nagios(clock, Kind.DOWNTIME_END, actor="mmartin"))

    ticket = await desk.ticket()
    assert ticket["paused_seconds"] == 90 * 60
    assert ticket["respond_by"] == t0 + timedelta(minutes=15 + 90)
    assert ticket["resolve_by"] == t0 + timedelta(hours=4, minutes=90)


async def test_downtime_without_an_active_ticket_does_nothing(desk: Desk, clock: Clock) -> None:
    await desk.send(nagios(clock, Kind.DOWNTIME_START, problem_id=None, actor="mmartin"))
    await desk.send(nagios(clock, Kind.DOWNTIME_END, problem_id=None, actor="mmartin"))

    assert await desk.tickets() == []


# --- exactly once ------------------------------------------------------------------------------------------


async def test_the_same_batch_applied_twice_changes_nothing_the_second_time(desk: Desk, clock: Clock) -> None:
    batch = [nagios(clock, Kind.PROBLEM)]
    clock.advance(minutes=1)
    batch.append(nagios(clock, Kind.PROBLEM))
    clock.advance(minutes=1)
    batch.append(nagios(clock, Kind.ACKNOWLEDGE, actor="jdupont"))
    await desk.send(*batch)
    ticket = await desk.ticket()
    logged = await desk.history(ticket["id"])

    clock.advance(minutes=10)
    redelivered = await desk.send(*batch)

    assert ticket["occurrences"] == 2
    assert await desk.ticket() == ticket
    assert await desk.history(ticket["id"]) == logged
    assert [a.new_alerts for a in redelivered] == [0, 0]


async def test_the_same_alert_id_inside_one_batch_counts_once(desk: Desk, clock: Clock) -> None:
    first = nagios(clock, Kind.PROBLEM)
    clock.advance(minutes=1)
    second = nagios(clock, Kind.PROBLEM)
    await desk.send(first, second, first, second)

    assert (await desk.ticket())["occurrences"] == 2


async def test_a_folded_run_counts_only_the_alerts_not_applied_before(desk: Desk, clock: Clock) -> None:
    run = []
    for _ in range(5):
        run.append(nagios(clock, Kind.PROBLEM))
        clock.advance(minutes=1)
    await desk.send(*run[:2])

    [applied] = await desk.send(*run)

    assert applied.new_alerts == 3
    assert (await desk.ticket())["occurrences"] == 5


async def test_concurrent_batches_of_one_new_problem_open_one_ticket_and_count_all(desk: Desk, clock: Clock) -> None:
    storm = [nagios(clock, Kind.PROBLEM) for _ in range(200)]

    results = await asyncio.gather(*(desk.send(alert) for alert in storm))

    assert [r.dead_letter for [r] in results if r.dead_letter] == []
    assert sum(r.opened for [r] in results) == 1
    assert (await desk.ticket())["occurrences"] == 200
