"""The ticket API's read side: list with filters and a cursor, one ticket with its history, statistics.

Reads go through `engines.read`, so on SQLite they never wait for the writer. Pages are keyed on the ticket id
(newest first, `id < cursor`): tickets opened while an operator pages through the list land before the first
page, never shift the later ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, String, case, cast, extract, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from normalizers.schema import Severity
from ticketstore import tables as t
from ticketstore.api.models import Stats, TicketPage
from ticketstore.db import Engines, outage_is_unavailable
from ticketstore.store import ticket_counts
from ticketstore.ticket import STATUSES
from ticketstore.view import TicketView

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class TicketFilters:
    """What to list; empty tuples and None mean "any". Values are already validated by the caller."""

    status: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    host: str | None = None
    dedup_key: str | None = None
    q: str | None = None  # case-insensitive substring of title, description, host, dedup_key or number
    group: str | None = None  # the console's queue filters these too
    assignee: str | None = None


class TicketQueries:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def list(
        self, filters: TicketFilters = TicketFilters(), limit: int = DEFAULT_LIMIT, cursor: int | None = None
    ) -> TicketPage:
        """Up to `limit` tickets older than `cursor` (a ticket id), newest first."""
        c = t.tickets.c
        query = (
            select(t.tickets).where(*conditions(filters, self._engines.dialect)).order_by(c.id.desc()).limit(limit + 1)
        )
        if cursor is not None:
            query = query.where(c.id < cursor)
        async with self._reading() as conn:
            rows = (await conn.execute(query)).all()
        tickets = [TicketView.from_columns(r._mapping) for r in rows[:limit]]
        next_cursor = str(tickets[-1].id) if len(rows) > limit else None
        return TicketPage(tickets=tickets, next_cursor=next_cursor)

    async def get(self, ticket_id: int) -> TicketView | None:
        """One ticket with its whole history, oldest entry first; None if there is no such ticket."""
        h = t.history.c
        async with self._reading() as conn:
            row = (await conn.execute(select(t.tickets).where(t.tickets.c.id == ticket_id))).first()
            if row is None:
                return None
            entries = await conn.execute(
                select(h.at, h.kind, h.actor, h.detail).where(h.ticket_id == ticket_id).order_by(h.id)
            )
            return TicketView.from_columns(row._mapping, [e._mapping for e in entries])

    async def stats(self) -> Stats:
        """Counts by status and severity, MTTA, MTTR and the SLA breach ratio, aggregated in the database."""
        c = t.tickets.c
        dialect = self._engines.dialect
        has_deadline = or_(c.respond_by.is_not(None), c.resolve_by.is_not(None))
        breached = has_deadline & or_(c.response_breached, c.resolution_breached)
        async with self._reading() as conn:
            counts = await ticket_counts(conn)
            means = (
                await conn.execute(
                    select(
                        func.avg(_seconds(dialect, c.first_seen, c.acknowledged_at)),
                        func.count(c.acknowledged_at),
                        func.avg(_seconds(dialect, c.first_seen, c.resolved_at)),
                        func.count(c.resolved_at),
                        func.coalesce(func.sum(case((has_deadline, 1), else_=0)), 0),
                        func.coalesce(func.sum(case((breached, 1), else_=0)), 0),
                    )
                )
            ).one()
        by_status = dict.fromkeys(STATUSES, 0)
        by_severity = dict.fromkeys((s.value for s in Severity), 0)
        for (status, severity), n in counts.items():
            by_status[status] = by_status.get(status, 0) + n
            by_severity[severity] = by_severity.get(severity, 0) + n
        mtta, acknowledged, mttr, resolved, with_sla, sla_breached = means
        return Stats(
            total=sum(by_status.values()),
            by_status=by_status,
            by_severity=by_severity,
            acknowledged=acknowledged,
            mtta_seconds=_rounded(mtta),
            resolved=resolved,
            mttr_seconds=_rounded(mttr),
            with_sla=with_sla,
            sla_breached=sla_breached,
            sla_breach_ratio=sla_breached / with_sla if with_sla else None,
        )

    # --- helpers ------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """A read connection; "cannot reach the database" becomes `Unavailable` (503), as on the write side."""
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                yield conn


def conditions(filters: TicketFilters, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE clauses of `filters` (the console's queue and CSV use them too)."""
    c = t.tickets.c
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(c.status.in_(filters.status))
    if filters.severity:
        conditions.append(c.severity.in_(filters.severity))
    if filters.source:
        conditions.append(c.source.in_(filters.source))
    if filters.host is not None:
        conditions.append(c.host == filters.host)
    if filters.dedup_key is not None:
        conditions.append(c.dedup_key == filters.dedup_key)
    if filters.group is not None:
        conditions.append(c.assigned_group == filters.group)
    if filters.assignee is not None:
        conditions.append(c.assignee == filters.assignee)
    if filters.q:
        columns = [c.title, c.description, c.host, c.dedup_key, _number(dialect)]
        conditions.append(or_(*(col.icontains(filters.q, autoescape=True) for col in columns)))
    return conditions


def _number(dialect: str) -> ColumnElement[str]:
    """`ticket_number(id)` in SQL ("INC-000123"), so `q` finds a ticket by (part of) its number."""
    c = t.tickets.c
    if dialect == "sqlite":
        return func.printf("INC-%06d", c.id, type_=String)
    digits = cast(c.id, String)
    width = func.greatest(6, func.length(digits), type_=Integer)
    return literal("INC-", String).concat(func.lpad(digits, width, "0", type_=String))


def _seconds(dialect: str, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
    """`end - start` in seconds, in SQL: PostgreSQL has epochs, SQLite (text timestamps) has julianday."""
    if dialect == "sqlite":
        return (func.julianday(end, type_=Float) - func.julianday(start, type_=Float)) * 86400.0
    return cast(extract("epoch", end) - extract("epoch", start), Float)


def _rounded(seconds: float | None) -> float | None:
    """Millisecond precision: julianday arithmetic carries float noise far below that."""
    return None if seconds is None else round(float(seconds), 3)
