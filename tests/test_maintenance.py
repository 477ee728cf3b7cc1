"""Maintenance windows (CONTRACT §8) as the on-call team lives them, on SQLite and on the machine's PostgreSQL.

The store is driven as production drives it (`TicketStore.apply_batch`, the store's chores) on an injected clock,
03:00 UTC on Saturday 14 March 2026 unless a test says otherwise; windows are created and ended with
`MaintenanceWindows`, what the API and the CLI call. What is read back is what a user sees: the ticket, its history,
the notification outbox, a real HTTP receiver.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from dedup.fold import fold
from normalizers.schema import Kind, Severity
from tests.conftest import Clock
from tests.test_escalation import POLICY, Desk, at, nagios, pick, sat, zabbix
from tests.test_notify import Receiver, disk_problem, policy_for, receiver, worker  # noqa: F401
from ticketstore import migrate
from ticketstore.db import Engines, create_engines
from ticketstore.escalation.loops import Background, EscalationMetrics
from ticketstore.escalation.notify import Notifier, NotifyMetrics
from ticketstore.escalation.resume import Seen, resume_ended, silence_open
from ticketstore.escalation.scan import escalate_due
from ticketstore.lifecycle import Lifecycle
from ticketstore.maintenance import InvalidWindow, Weekly, Window, WindowRequest, parse_weekly
from ticketstore.metrics import StoreMetrics
from ticketstore.migrate import head, upgrade
from ticketstore.policy import Policy
from ticketstore.store import TicketStore
from ticketstore.tables import metadata
from ticketstore.windows import MaintenanceWindows


def store_for(engines: Engines, clock: Clock, policy: Policy = POLICY) -> TicketStore:
    """As `alertdesk run` builds it, but reading the windows at every batch (the clock here stands still)."""
    return TicketStore(engines, Lifecycle(policy), now=clock, cache=True, windows_every=0)


@pytest.fixture
def desk(engines: Engines, clock: Clock) -> Desk:
    return Desk(store_for(engines, clock), engines)


async def silence(desk: Desk, by: str = "mmartin", **request: Any) -> Window:
    body = {"comment": "Patching the database hosts, CHG0042", **request}
    return await MaintenanceWindows(desk.store).create(WindowRequest.model_validate(body), by)


async def resume(desk: Desk, store: TicketStore | None = None) -> int:
    return (await resume_ended(store or desk.store)).resumed


def db_disk(clock: Clock, kind: Kind = Kind.PROBLEM, host: str = "db-paris-01", **extra: Any) -> Any:
    return nagios(clock, kind, host=host, problem_id="51007", **extra)


# --- inside, outside, before, after ---------------------------------------------------------------------------------


async def test_a_problem_in_a_window_opens_a_quiet_ticket_that_pages_once_when_the_window_closes(
    desk: Desk, clock: Clock
) -> None:
    t0 = clock()
    window = await silence(desk, match={"host": "db*"}, duration="2h")
    at(clock, t0, minutes=10)
    await desk.send(db_disk(clock))

    ticket = await desk.ticket()
    assert pick(ticket, "status", "suppressed", "maintenance_window_id", "held_opened") == ("open", True, 1, True)
    assert (await desk.history())[1] == (
        "Sat 03:10",
        "suppressed",
        f"maintenance window {window.id} (host=db*, until 2026-03-14 05:00Z): Patching the database hosts, CHG0042",
    )
    assert await desk.outbox() == []  # no page

    for minutes in (30, 60, 119):  # deadlines and steps all fall inside the window: nothing fires
        at(clock, t0, minutes=minutes)
        assert await desk.scan() == []
        assert await resume(desk) == 0
    assert await desk.outbox() == []

    at(clock, t0, hours=2)
    assert await resume(desk) == 1
    assert await resume(desk) == 0  # once
    ticket = await desk.ticket()
    assert pick(ticket, "suppressed", "maintenance_window_id", "held_opened", "paused_seconds") == (
        False,
        None,
        False,
        110 * 60,
    )
    assert pick(ticket, "respond_by", "next_escalation_at") == (sat(5, 15), sat(5, 15))  # 03:25 + 110 min paused
    assert await desk.outbox() == [
        ("opened", 0, "ops-hook", "INC-000001:opened:opened"),
        ("opened", 0, "ops-slack", "INC-000001:opened:opened"),
    ]
    assert (await desk.history())[-1] == ("Sat 05:00", "unsuppressed", "maintenance window 1 is over")
    at(clock, t0, hours=2, minutes=15)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]  # the clocks run again


async def test_alerts_before_after_and_outside_the_window_page_as_usual(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await silence(
        desk, match={"host": "db*", "source": "nagios"}, starts_at=sat(4).isoformat(), ends_at="2026-03-14T05:00:00Z"
    )
    await desk.send(db_disk(clock))  # 03:00: before it starts
    at(clock, t0, hours=1, minutes=30)
    await desk.send(nagios(clock, Kind.PROBLEM, host="web-01"), zabbix(clock, Severity.CRITICAL))  # not matching
    at(clock, t0, hours=2)
    await desk.send(db_disk(clock, host="db-lyon-02"))  # 05:00: the end is not in the window

    tickets = await desk.tickets()
    assert [(x["host"], x["suppressed"]) for x in tickets] == [
        ("db-paris-01", False),
        ("web-01", False),
        ("db-paris-01", False),  # a zabbix host named db*: the window is for nagios only
        ("db-lyon-02", False),
    ]
    assert [event for event, *_ in await desk.outbox()] == ["opened"] * 8  # critical: ops-hook and ops-slack


async def test_a_repeat_in_the_window_silences_an_open_ticket_and_only_a_held_opened_is_sent_at_the_end(
    desk: Desk, clock: Clock
) -> None:
    t0 = clock()
    await desk.send(db_disk(clock))  # paged at 03:00, before anyone declared the work
    at(clock, t0, minutes=5)
    await silence(desk, match={"host": "db*"}, duration="1h")
    at(clock, t0, minutes=10)
    await desk.send(db_disk(clock, severity=Severity.CRITICAL))
    assert pick(await desk.ticket(), "suppressed", "maintenance_window_id", "held_opened") == (True, 1, False)

    at(clock, t0, minutes=40)
    assert await desk.scan() == []  # the 03:15 deadline was paused at 03:10
    at(clock, t0, hours=1, minutes=5)
    assert await resume(desk) == 1
    assert pick(await desk.ticket(), "suppressed", "respond_by") == (False, sat(4, 10))
    assert [event for event, *_ in await desk.outbox()] == ["opened", "opened"]  # from 03:00 only


async def test_a_recovery_in_the_window_resolves_as_usual_and_nobody_is_paged_at_all(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await silence(desk, match={"host": "db*"}, duration="2h")
    await desk.send(db_disk(clock))
    at(clock, t0, minutes=20)
    await desk.send(db_disk(clock, Kind.RECOVERY))

    assert pick(await desk.ticket(), "status", "suppressed", "maintenance_window_id") == ("resolved", False, None)
    at(clock, t0, hours=3)
    assert await resume(desk) == 0
    assert await desk.outbox() == []  # nobody heard of the opening, nobody hears of the resolution


async def test_a_window_created_while_a_ticket_escalates_silences_it_until_its_end(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(db_disk(clock), nagios(clock, Kind.PROBLEM, host="web-01"))  # both paged at 03:00
    at(clock, t0, minutes=5)
    await silence(desk, match={"host": "db*"}, duration="1h")
    seen: Seen = set()
    assert await silence_open(desk.store, seen) == 1
    assert await silence_open(desk.store, seen) == 0  # once per window and process
    assert pick(await desk.ticket(1), "suppressed", "maintenance_window_id") == (True, 1)
    assert (await desk.history(1))[-1][:2] == ("Sat 03:05", "suppressed")

    at(clock, t0, minutes=20)
    assert await desk.scan() == [("sla_breached", "response"), ("escalated", "1")]  # web-01 only
    assert (await desk.ticket(1))["escalation_level"] == 0
    at(clock, t0, hours=1, minutes=5)
    assert await resume(desk) == 1
    assert pick(await desk.ticket(1), "suppressed", "respond_by") == (False, sat(4, 15))
    assert [event for event, *_ in await desk.outbox(1)] == ["opened", "opened"]  # paged at 03:00, not again


async def test_open_tickets_are_matched_by_the_same_patterns_as_new_alerts(desk: Desk, clock: Clock) -> None:
    hosts = ["db-paris-01", "db_paris", "dbXparis", "web-01"]
    await desk.send(*(db_disk(clock, host=host) for host in hosts))
    host_down = nagios(clock, Kind.PROBLEM, host="mq-01").model_copy(
        update={"service": None, "dedup_key": "nagios:mq-01"}
    )
    await desk.send(host_down)  # a host alert: no service
    at(clock, sat(3), minutes=1)
    await silence(desk, match={"host": "db_*"}, duration="1h")  # `_` is no wildcard
    await silence(desk, match={"host": "[dw]*-0?", "service": "DISK*"}, duration="1h")  # character classes
    await silence(desk, match={"host": "mq-*", "service": "*"}, duration="1h")
    assert await silence_open(desk.store, set()) == 4
    assert [(x["host"], x["maintenance_window_id"]) for x in await desk.tickets()] == [
        ("db-paris-01", 2),
        ("db_paris", 1),
        ("dbXparis", None),
        ("web-01", 2),
        ("mq-01", 3),
    ]


# --- ending, restarts, overlaps ---------------------------------------------------------------------------------


async def test_ending_a_window_early_resumes_its_tickets_and_keeps_it_listed_as_ended(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    windows = MaintenanceWindows(desk.store)
    window = await silence(desk, match={"host": "db*"}, duration="4h")
    await desk.send(db_disk(clock))
    at(clock, t0, minutes=30)
    assert [w.id for w in await windows.list("active")] == [window.id]

    ended = await windows.end(window.id, "jdupont")
    assert (ended.ended_by, ended.ended_at) == ("jdupont", sat(3, 30))
    assert await resume(desk) == 1
    assert [event for event, *_ in await desk.outbox()] == ["opened", "opened"]
    assert [w.id for w in await windows.list("active")] == []
    assert [(w.id, w.ended_by) for w in await windows.list("ended")] == [(window.id, "jdupont")]

    at(clock, t0, minutes=40)
    await desk.send(db_disk(clock, host="db-lyon-02"))  # after the end: pages at once
    assert [event for event, *_ in await desk.outbox()] == ["opened"] * 4


async def test_a_window_that_ended_while_the_store_was_down_resumes_once_after_restart(
    database: tuple[str, str | None], engines: Engines, clock: Clock, desk: Desk
) -> None:
    url, schema = database
    t0 = clock()
    await silence(desk, match={"service": "DISK*"}, duration="1h")
    at(clock, t0, minutes=10)
    await desk.send(db_disk(clock))
    await engines.dispose()  # stopped in the middle of the window

    at(clock, t0, hours=3)  # back long after its end
    resumed = []
    for _ in range(2):  # started again, and once more
        restarted = create_engines(url, schema=schema)
        try:
            resumed.append(await resume(desk, store_for(restarted, clock)))
        finally:
            await restarted.dispose()
    assert resumed == [1, 0]
    assert [key for *_, key in await desk.outbox()] == ["INC-000001:opened:opened"] * 2
    ticket = await desk.ticket()
    assert pick(ticket, "suppressed", "paused_seconds") == (False, (2 * 60 + 50) * 60)  # 03:10 → 06:00
    assert ticket["respond_by"] == sat(6, 15)


async def test_overlapping_windows_keep_the_ticket_quiet_until_the_last_one_is_over(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    first = await silence(desk, match={"host": "db*"}, duration="1h")
    second = await silence(desk, match={"service": "DISK*"}, duration="2h", comment="SAN firmware")
    at(clock, t0, minutes=10)
    await desk.send(db_disk(clock))
    assert (await desk.ticket())["maintenance_window_id"] == first.id

    at(clock, t0, hours=1)
    assert await resume(desk) == 0
    assert pick(await desk.ticket(), "suppressed", "maintenance_window_id") == (True, second.id)
    assert (await desk.history())[-1][1:] == (
        "suppressed",
        "maintenance window 1 is over; still in maintenance window 2 (service=DISK*, until 2026-03-14 05:00Z): "
        "SAN firmware",
    )
    assert await desk.outbox() == []
    at(clock, t0, hours=2)
    assert await resume(desk) == 1
    assert [event for event, *_ in await desk.outbox()] == ["opened", "opened"]
    assert (await desk.ticket())["paused_seconds"] == 110 * 60


async def test_a_source_downtime_and_a_window_both_have_to_be_over(desk: Desk, clock: Clock) -> None:
    t0 = clock()
    await desk.send(db_disk(clock))
    at(clock, t0, minutes=5)
    await desk.send(db_disk(clock, Kind.DOWNTIME_START, actor="mmartin", comment="Disk replacement"))
    await silence(desk, match={"host": "db*"}, duration="1h")
    at(clock, t0, minutes=10)
    await desk.send(db_disk(clock))
    at(clock, t0, minutes=30)
    await desk.send(db_disk(clock, Kind.DOWNTIME_END, actor="mmartin"))
    assert pick(await desk.ticket(), "suppressed", "downtime", "maintenance_window_id") == (True, False, 1)
    assert (await desk.history())[-1][1:] == ("downtime_ended", "downtime end; still in maintenance window 1")
    at(clock, t0, hours=1)
    assert await desk.scan() == []
    at(clock, t0, hours=1, minutes=5)
    assert await resume(desk) == 1
    assert pick(await desk.ticket(), "suppressed", "paused_seconds") == (False, 3600)  # 03:05 → 04:05

    # and the other way round: the window ends first, the downtime goes on
    at(clock, t0, hours=2)
    await silence(desk, match={"host": "db*"}, duration="30m")
    await desk.send(db_disk(clock, Kind.DOWNTIME_START, actor="mmartin", comment="Disk replacement, part 2"))
    await desk.send(db_disk(clock))
    at(clock, t0, hours=2, minutes=30)
    assert await resume(desk) == 1
    assert pick(await desk.ticket(), "suppressed", "downtime", "maintenance_window_id") == (True, True, None)
    assert (await desk.history())[-1][1:] == ("maintenance_ended", "maintenance window 2 is over; downtime goes on")
    at(clock, t0, hours=3)
    await desk.send(db_disk(clock, Kind.DOWNTIME_END, actor="mmartin"))
    assert pick(await desk.ticket(), "suppressed", "paused_seconds") == (False, 2 * 3600)
    assert [event for event, *_ in await desk.outbox()] == ["opened", "opened"]  # the 03:00 page only


# --- weekly windows ---------------------------------------------------------------------------------------------------


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Paris")).astimezone(UTC)  # type: ignore[misc]


def test_a_weekly_window_keeps_its_wall_clock_hours_across_the_daylight_saving_change() -> None:
    sunday_nights = Weekly.model_validate({"days": ["sun"], "start": "02:00", "end": "04:00"})
    zone = ZoneInfo("Europe/Paris")
    utc = [
        # (UTC instant, covered?) — CET (UTC+1) until Sunday 29 March 2026 02:00, CEST (UTC+2) afterwards
        (datetime(2026, 3, 22, 0, 59, tzinfo=UTC), False),  # 01:59 CET
        (datetime(2026, 3, 22, 1, 0, tzinfo=UTC), True),  # 02:00 CET
        (datetime(2026, 3, 22, 2, 59, tzinfo=UTC), True),  # 03:59 CET
        (datetime(2026, 3, 22, 3, 0, tzinfo=UTC), False),  # 04:00 CET
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), False),  # 01:30 CET, before the jump
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), True),  # 03:00 CEST: 02:00-03:00 does not exist that night
        (datetime(2026, 3, 29, 2, 0, tzinfo=UTC), False),  # 04:00 CEST
        (datetime(2026, 4, 5, 0, 0, tzinfo=UTC), True),  # 02:00 CEST
        (datetime(2026, 4, 5, 1, 59, tzinfo=UTC), True),  # 03:59 CEST
        (datetime(2026, 4, 5, 2, 0, tzinfo=UTC), False),  # 04:00 CEST
        (datetime(2026, 4, 4, 1, 0, tzinfo=UTC), False),  # a Saturday
    ]
    assert [(instant, sunday_nights.covers(instant, zone)) for instant, _ in utc] == utc
    assert paris(2026, 4, 5, 2, 0) == datetime(2026, 4, 5, 0, 0, tzinfo=UTC)


async def test_a_standing_weekly_window_silences_only_during_its_hours_in_the_policys_zone(
    desk: Desk, clock: Clock
) -> None:
    clock.current = datetime(2026, 3, 21, 12, 0, tzinfo=UTC)
    await silence(desk, match={"host": "db*"}, recurrence="sun 02:00-04:00")  # standing: no end
    for instant in (paris(2026, 3, 22, 1, 30), paris(2026, 3, 22, 2, 30), paris(2026, 4, 5, 2, 30)):
        clock.current = instant
        await desk.send(db_disk(clock, host=f"db-{instant:%m%d%H%M}"))
    assert [x["suppressed"] for x in await desk.tickets()] == [False, True, True]
    clock.current = paris(2026, 4, 5, 4, 0)
    assert await resume(desk) == 2


def test_weekly_shorthand_reads_days_ranges_and_times() -> None:
    assert parse_weekly("sun 02:00-04:00").describe() == "sun 02:00-04:00"
    assert parse_weekly("Mon-Fri 12:00-13:30").describe() == "mon,tue,wed,thu,fri 12:00-13:30"
    assert parse_weekly("sat,sun 1:00-5:00").describe() == "sat,sun 01:00-05:00"
    for bad in ("sunday 02:00-04:00", "sun 04:00-02:00", "sun 2am-4am"):
        with pytest.raises(ValueError):
            parse_weekly(bad)


# --- what is refused --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"match": {"host": "db*"}, "starts_at": "2026-03-14T05:00:00Z", "ends_at": "2026-03-14T04:00:00Z"}, "ends_at"),
        ({"match": {"host": "db*"}, "ends_at": "2026-03-14T02:00:00Z"}, "ends_at"),  # already over
        ({"match": {}, "duration": "2h"}, "match"),
        ({"duration": "2h"}, "match"),
        ({"match": {"host": "db*"}, "all": True, "duration": "2h"}, "all"),
        ({"match": {"host": "db*"}}, "ends_at"),
        ({"match": {"host": "db*"}, "duration": "2h", "ends_at": "2026-03-14T05:00:00Z"}, "duration"),
        ({"match": {"host": "db*"}, "duration": "0h"}, "duration"),
    ],
)
def test_a_window_that_cannot_apply_is_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    request = WindowRequest.model_validate({"comment": "patching", **body})
    with pytest.raises(InvalidWindow) as refused:
        request.window(sat(3), "mmartin")
    assert refused.value.field == field


def test_an_empty_match_with_all_silences_everything() -> None:
    request = WindowRequest.model_validate({"comment": "datacenter move", "all": True, "duration": "2h"})
    window = request.window(sat(3), "mmartin")
    assert (dict(window.match), window.ends_at) == ({}, sat(5))


# --- several store processes, metrics, delivery -------------------------------------------------------------------

ON_POSTGRES = pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@ON_POSTGRES
async def test_two_store_processes_resuming_together_send_the_held_opened_once(
    database: tuple[str, str | None], engines: Engines, clock: Clock, desk: Desk
) -> None:
    url, schema = database
    t0 = clock()
    await silence(desk, match={"host": "db*"}, duration="1h")
    await desk.send(*(db_disk(clock, host=f"db-{n:02d}") for n in range(40)))
    at(clock, t0, hours=1)
    others = [create_engines(url, schema=schema) for _ in range(2)]
    try:
        rounds = await asyncio.gather(*(resume(desk, store_for(e, clock)) for e in others for _ in range(3)))
    finally:
        for e in others:
            await e.dispose()
    assert sum(rounds) == 40
    keys = [key for *_, key in await desk.outbox()]
    assert len(keys) == 80 and len(set(keys)) == 40  # hook and slack, once each per ticket


@ON_POSTGRES
async def test_a_window_created_through_one_store_applies_to_the_next_alert_another_stores(
    database: tuple[str, str | None], engines: Engines, clock: Clock
) -> None:
    url, schema = database
    other = create_engines(url, schema=schema)
    try:
        one = Desk(TicketStore(engines, Lifecycle(POLICY), now=clock), engines)  # default: re-read each second
        two = Desk(TicketStore(other, Lifecycle(POLICY), now=clock), other)
        await two.send(nagios(clock, Kind.PROBLEM, host="web-01"))  # two has read the windows: none
        await silence(one, match={"host": "db*"}, duration="1h")
        await asyncio.sleep(1.05)
        await two.send(db_disk(clock))
        assert [x["suppressed"] for x in await one.tickets()] == [False, True]
    finally:
        await other.dispose()


async def test_silenced_alerts_and_active_windows_are_in_the_metrics(desk: Desk, clock: Clock) -> None:
    registry = CollectorRegistry()
    metrics = StoreMetrics(registry)
    await silence(desk, match={"host": "db*"}, duration="1h")
    await silence(desk, match={"host": "web*"}, starts_at=sat(4).isoformat(), duration="1h")
    commands = fold([db_disk(clock), db_disk(clock, host="db-02"), nagios(clock, Kind.PROBLEM, host="app-01")])
    metrics.record(commands, await desk.store.apply_batch(commands), clock())
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(desk.engines, POLICY, session, NotifyMetrics(registry), now=clock)
        chores = Background(desk.store, notifier, EscalationMetrics(registry), retention=timedelta(days=7))
        await chores.resume()
        assert registry.get_sample_value("alertdesk_maintenance_windows_active") == 1.0  # the other is upcoming
        at(clock, sat(3), hours=1, minutes=30)
        await chores.resume()
        assert registry.get_sample_value("alertdesk_maintenance_windows_active") == 1.0
        at(clock, sat(3), hours=3)
        await chores.resume()
        assert registry.get_sample_value("alertdesk_maintenance_windows_active") == 0.0
    assert registry.get_sample_value("alertdesk_alerts_silenced_total", {"source": "nagios"}) == 2.0
    assert registry.get_sample_value("alertdesk_alerts_silenced_total", {"source": "zabbix"}) == 0.0


async def test_the_receiver_gets_the_opened_message_once_at_the_end_and_never_during(
    engines: Engines,
    clock: Clock,
    receiver: Receiver,  # noqa: F811
) -> None:
    policy = policy_for(receiver)
    async with worker(engines, policy, clock) as w:
        store = store_for(engines, clock, policy)
        desk = Desk(store, engines)
        t0 = clock()
        await silence(desk, match={"host": "web-*"}, duration="30m")
        await store.apply_batch(fold([disk_problem(clock)]))
        for minutes in (5, 20, 29):
            at(clock, t0, minutes=minutes)
            await escalate_and_notify(store, w.notifier)
        assert receiver.deliveries == []
        for minutes in (30, 31, 32):
            at(clock, t0, minutes=minutes)
            await resume_ended(store)
            await escalate_and_notify(store, w.notifier)
    assert receiver.accepted() == [
        ("ops-hook", "INC-000001:opened:opened"),
        ("ops-slack", "INC-000001:opened:opened"),
        ("ops-teams", "INC-000001:opened:opened"),
    ]
    assert {d.body.get("event") for d in receiver.deliveries if d.channel == "ops-hook"} == {"opened"}


async def escalate_and_notify(store: TicketStore, notifier: Notifier) -> None:
    await escalate_due(store)
    await notifier.run_once()


# --- the schema upgrade ---------------------------------------------------------------------------------------------


async def test_upgrading_keeps_a_ticket_suppressed_by_a_downtime_and_compares_clean(
    database: tuple[str, str | None],
) -> None:
    """A database of the previous release: its suppressed tickets were suppressed by the source's downtime."""
    url, schema = database
    old = create_engines(url, schema=schema)
    try:
        async with old.write.begin() as conn:
            await conn.run_sync(_upgrade_to, "0002")
            await conn.execute(
                text(
                    "INSERT INTO tickets (dedup_key, source, title, description, host, severity, peak_severity, "
                    "priority, status, suppressed, flapping, occurrences, first_seen, last_seen, escalation_level, "
                    "response_breached, resolution_breached, paused_seconds, source_refs, tags) VALUES ("
                    "'nagios:db-01/DISK /', 'nagios', 'DISK /', '', 'db-01', 'critical', 'critical', 'P1', 'open', "
                    ":yes, :no, 1, :at, :at, 0, :no, :no, 0, '{}', '{}')"
                ),
                {"yes": True, "no": False, "at": datetime(2026, 3, 14, 3, 0)},
            )
        assert await upgrade(old.write) == head()
        async with old.read.connect() as conn:
            row = (await conn.execute(text("SELECT suppressed, downtime, maintenance_window_id FROM tickets"))).one()
            assert (bool(row[0]), bool(row[1]), row[2]) == (True, True, None)
            assert await conn.run_sync(_differences) == []
    finally:
        await old.dispose()


def _upgrade_to(connection: Any, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _differences(connection: Any) -> list[Any]:
    """What autogenerate would still add or drop: the migrations and `tables.py` describe the same schema."""
    return list(compare_metadata(MigrationContext.configure(connection), metadata))
