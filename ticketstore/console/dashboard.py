"""The dashboard's figures, each one GROUP BY in the database (never tickets loaded into Python).

Days and hours are UTC buckets, spelled the same on SQLite and PostgreSQL; a week (labelled by its Monday) is
the sum of its days' rows, added up here from at most a few dozen grouped rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, String, case, cast, extract, func, literal, select, union_all
from sqlalchemy.sql import ColumnElement

from ticketstore import tables as t
from ticketstore.db import Engines, outage_is_unavailable
from ticketstore.tables import ACTIVE_STATUSES

PERIODS = (1, 7, 30, 90)  # days the period chooser offers
NOISIEST = 10


@dataclass(frozen=True, slots=True)
class Figures:
    days: int
    open_by_severity: list[tuple[str, int]]
    open_by_group: list[tuple[str, int]]
    opened_per_day: dict[str, int]
    resolved_per_day: dict[str, int]
    mtta_per_day: dict[str, float]  # minutes
    mttr_per_day: dict[str, float]
    sla_per_week: dict[str, tuple[int, int]]  # week → (met, breached)
    noisiest_checks: list[tuple[str, str, int, int]]  # host, service, alerts, tickets
    noisiest_hosts: list[tuple[str, int, int]]
    alerts_per_source_hour: dict[str, dict[str, int]]  # source → hour → alerts


class Dashboard:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def figures(self, days: int, now: datetime) -> Figures:
        queries = self.statements(now - timedelta(days=days))
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                got = {name: (await conn.execute(q)).all() for name, q in queries.items()}
        per_source: dict[str, dict[str, int]] = {}
        for source, bucket, n in got["sources"]:
            per_source.setdefault(source, {})[bucket] = int(n)
        days_rows = sorted(got["days"])
        weeks: dict[str, tuple[int, int]] = {}
        for day, _, _, _, met, late_n in days_rows:
            if met or late_n:
                week = _monday(day)
                before = weeks.get(week, (0, 0))
                weeks[week] = (before[0] + int(met), before[1] + int(late_n))
        return Figures(
            days=days,
            open_by_severity=_by_severity(got["severity"]),
            open_by_group=[(g, int(n)) for g, n in got["group"]],
            opened_per_day={day: int(n) for day, n, *_ in days_rows},
            resolved_per_day=_series(got["resolved"]),
            mtta_per_day={day: round(float(a) / 60, 1) for day, _, a, *_ in days_rows if a is not None},
            mttr_per_day={day: round(float(r) / 60, 1) for day, _, _, r, *_ in days_rows if r is not None},
            sla_per_week=dict(sorted(weeks.items())),
            noisiest_checks=[(h, s, int(a or 0), int(n)) for kind, h, s, a, n in got["noisiest"] if kind == "check"],
            noisiest_hosts=[(h, int(a or 0), int(n)) for kind, h, _, a, n in got["noisiest"] if kind == "host"],
            alerts_per_source_hour=per_source,
        )

    def statements(self, since: datetime) -> dict[str, Any]:
        """The figures' queries over the tickets since `since` (the benchmark prints their plans)."""
        d = self._engines.dialect
        c, p = t.tickets.c, t.processed_alerts.c
        active = c.status.in_(ACTIVE_STATUSES)
        group = func.coalesce(c.assigned_group, literal("(none)"))
        day_seen, day_resolved = _bucket(d, c.first_seen, "day"), _bucket(d, c.resolved_at, "day")
        has_deadline = c.respond_by.is_not(None) | c.resolve_by.is_not(None)
        breached = c.response_breached | c.resolution_breached
        hour = _bucket(d, p.processed_at, "hour")
        acked = c.acknowledged_at.is_not(None)
        resolved = c.resolved_at.is_not(None)
        late = has_deadline & breached
        return {
            "severity": select(c.severity, func.count()).where(active).group_by(c.severity),
            "group": select(group, func.count()).where(active).group_by(group).order_by(func.count().desc()),
            # one scan of the period's tickets gives four figures per day; weeks are summed from the days below
            "days": select(
                day_seen,
                func.count(),
                func.avg(case((acked, _seconds(d, c.first_seen, c.acknowledged_at)))),
                func.avg(case((resolved, _seconds(d, c.first_seen, c.resolved_at)))),
                func.sum(case((has_deadline & ~breached, 1), else_=0)),
                func.sum(case((late, 1), else_=0)),
            )
            .where(c.first_seen >= since)
            .group_by(day_seen),
            "resolved": select(day_resolved, func.count()).where(c.resolved_at >= since).group_by(day_resolved),
            "noisiest": _noisiest(since),
            "sources": select(c.source, hour, func.count())
            .select_from(t.processed_alerts.join(t.tickets, c.id == p.ticket_id))
            .where(p.processed_at >= since, p.kind == "problem")
            .group_by(c.source, hour),
        }


def _noisiest(since: datetime) -> Any:
    """The top checks and the top hosts in one statement: the period's tickets are grouped by check once (a CTE),
    and the hosts are summed from those groups, instead of scanning the tickets a second time."""
    c = t.tickets.c
    per_check = (
        select(
            c.host.label("host"),
            func.coalesce(c.service, literal("")).label("service"),
            func.sum(c.occurrences).label("alerts"),
            func.count().label("tickets"),
        )
        .where(c.last_seen >= since)
        .group_by(c.host, c.service)
        .cte("per_check")
    )
    k = per_check.c
    checks = (
        select(literal("check").label("kind"), k.host, k.service, k.alerts, k.tickets)
        .order_by(k.alerts.desc(), k.host, k.service)
        .limit(NOISIEST)
        .subquery()
    )
    host_alerts = func.sum(k.alerts)
    hosts = (
        select(literal("host").label("kind"), k.host, literal("").label("service"), host_alerts, func.sum(k.tickets))
        .group_by(k.host)
        .order_by(host_alerts.desc(), k.host)
        .limit(NOISIEST)
        .subquery()
    )
    return union_all(select(checks), select(hosts))


def _by_severity(rows: Sequence[Any]) -> list[tuple[str, int]]:
    from normalizers.schema import Severity

    counts = {s: int(n) for s, n in rows}
    return [(s.value, counts.get(s.value, 0)) for s in Severity]


def _series(rows: Sequence[Any]) -> dict[str, int]:
    return {k: int(n) for k, n in sorted(rows)}


def _bucket(dialect: str, column: ColumnElement[Any], size: str) -> ColumnElement[str]:
    """The UTC day `2026-03-14` or hour `2026-03-14 03:00` of a timestamp, in SQL."""
    if dialect == "sqlite":  # stored as UTC text "2026-03-14 03:00:00.000000": a prefix is the bucket
        if size == "day":
            return func.substr(column, 1, 10, type_=String)
        return func.substr(column, 1, 13, type_=String).concat(":00")
    utc = func.timezone("UTC", column)
    return func.to_char(utc, "YYYY-MM-DD" if size == "day" else "YYYY-MM-DD HH24:00", type_=String)


def _monday(day: str) -> str:
    """The Monday of the ISO week of `day` (YYYY-MM-DD): a week's label."""
    date = datetime.strptime(day, "%Y-%m-%d")
    return (date - timedelta(days=date.weekday())).strftime("%Y-%m-%d")


def _seconds(dialect: str, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
    if dialect == "sqlite":
        return (func.julianday(end, type_=Float) - func.julianday(start, type_=Float)) * 86400.0
    return cast(extract("epoch", end) - extract("epoch", start), Float)
