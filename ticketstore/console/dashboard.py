"""The dashboard's figures, each one GROUP BY in the database (never tickets loaded into Python).

Days, weeks (labelled by their Monday) and hours are UTC buckets, spelled the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, String, case, cast, extract, func, literal, select
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
        since = now - timedelta(days=days)
        c, p = t.tickets.c, t.processed_alerts.c
        d = self._engines.dialect
        active = c.status.in_(ACTIVE_STATUSES)
        group = func.coalesce(c.assigned_group, literal("(none)"))
        day_seen, day_resolved = _bucket(d, c.first_seen, "day"), _bucket(d, c.resolved_at, "day")
        has_deadline = c.respond_by.is_not(None) | c.resolve_by.is_not(None)
        breached = c.response_breached | c.resolution_breached
        week = _bucket(d, c.first_seen, "week")
        hour = _bucket(d, p.processed_at, "hour")
        alerts = func.sum(c.occurrences)
        queries: dict[str, Any] = {
            "severity": select(c.severity, func.count()).where(active).group_by(c.severity),
            "group": select(group, func.count()).where(active).group_by(group).order_by(func.count().desc()),
            "opened": select(day_seen, func.count()).where(c.first_seen >= since).group_by(day_seen),
            "resolved": select(day_resolved, func.count()).where(c.resolved_at >= since).group_by(day_resolved),
            "mtta": select(day_seen, func.avg(_seconds(d, c.first_seen, c.acknowledged_at)))
            .where(c.first_seen >= since, c.acknowledged_at.is_not(None))
            .group_by(day_seen),
            "mttr": select(day_seen, func.avg(_seconds(d, c.first_seen, c.resolved_at)))
            .where(c.first_seen >= since, c.resolved_at.is_not(None))
            .group_by(day_seen),
            "sla": select(week, func.sum(case((breached, 0), else_=1)), func.sum(case((breached, 1), else_=0)))
            .where(c.first_seen >= since, has_deadline)
            .group_by(week),
            "checks": select(c.host, func.coalesce(c.service, literal("")), alerts, func.count())
            .where(c.last_seen >= since)
            .group_by(c.host, c.service)
            .order_by(alerts.desc())
            .limit(NOISIEST),
            "hosts": select(c.host, alerts, func.count())
            .where(c.last_seen >= since)
            .group_by(c.host)
            .order_by(alerts.desc())
            .limit(NOISIEST),
            "sources": select(c.source, hour, func.count())
            .select_from(t.processed_alerts.join(t.tickets, c.id == p.ticket_id))
            .where(p.processed_at >= since, p.kind == "problem")
            .group_by(c.source, hour),
        }
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                got = {name: (await conn.execute(q)).all() for name, q in queries.items()}
        per_source: dict[str, dict[str, int]] = {}
        for source, bucket, n in got["sources"]:
            per_source.setdefault(source, {})[bucket] = int(n)
        return Figures(
            days=days,
            open_by_severity=_by_severity(got["severity"]),
            open_by_group=[(g, int(n)) for g, n in got["group"]],
            opened_per_day=_series(got["opened"]),
            resolved_per_day=_series(got["resolved"]),
            mtta_per_day={k: round(float(v) / 60, 1) for k, v in got["mtta"]},
            mttr_per_day={k: round(float(v) / 60, 1) for k, v in got["mttr"]},
            sla_per_week={w: (int(met), int(late)) for w, met, late in sorted(got["sla"])},
            noisiest_checks=[(h, s, int(a or 0), int(n)) for h, s, a, n in got["checks"]],
            noisiest_hosts=[(h, int(a or 0), int(n)) for h, a, n in got["hosts"]],
            alerts_per_source_hour=per_source,
        )


def _by_severity(rows: Sequence[Any]) -> list[tuple[str, int]]:
    from normalizers.schema import Severity

    counts = {s: int(n) for s, n in rows}
    return [(s.value, counts.get(s.value, 0)) for s in Severity]


def _series(rows: Sequence[Any]) -> dict[str, int]:
    return {k: int(n) for k, n in sorted(rows)}


def _bucket(dialect: str, column: ColumnElement[Any], size: str) -> ColumnElement[str]:
    """The UTC day `2026-03-14`, week (its Monday) or hour `2026-03-14 03:00` of a timestamp, in SQL."""
    if dialect == "sqlite":
        if size == "week":
            return func.date(column, "weekday 0", "-6 days", type_=String)
        return func.strftime("%Y-%m-%d" if size == "day" else "%Y-%m-%d %H:00", column, type_=String)
    utc = func.timezone("UTC", column)
    if size == "week":
        return func.to_char(func.date_trunc("week", utc), "YYYY-MM-DD", type_=String)
    return func.to_char(utc, "YYYY-MM-DD" if size == "day" else "YYYY-MM-DD HH24:00", type_=String)


def _seconds(dialect: str, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
    if dialect == "sqlite":
        return (func.julianday(end, type_=Float) - func.julianday(start, type_=Float)) * 86400.0
    return cast(extract("epoch", end) - extract("epoch", start), Float)
