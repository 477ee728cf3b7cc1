"""The queue's reads: a filtered, sorted page of tickets, the "anything changed?" cursor, a ticket's neighbours.

Newest-first pages are keyed on the ticket id like the API's. "Most urgent" (priority, then the nearest
deadline, then newest) is keyed on the last ticket's place in that order as the page showed it: its order moves
as tickets are acknowledged or raised, and an offset would then skip a ticket that was never touched (one
acknowledged on page 1 moves down, everything behind it moves up one, and page 2 starts one too far). Keyed, a
ticket that did not move is never skipped nor shown twice; one that moved may show again where it is now. The
change cursor is the newest history entry and the newest `last_seen`: both indexed, so a poll costs two index
look-ups, in any process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.sql import ColumnElement

from ticketstore import tables as t
from ticketstore.api.queries import TicketFilters, conditions
from ticketstore.db import Engines, outage_is_unavailable
from ticketstore.view import TicketView

Sort = Literal["newest", "urgent"]
SORTS: tuple[Sort, ...] = ("newest", "urgent")
PAGE = 50


@dataclass(frozen=True, slots=True)
class After:
    """Where a "most urgent" page starts: after this place in the order (priority, deadline, id)."""

    priority: str
    due: datetime | None
    id: int

    def __str__(self) -> str:
        due = "-" if self.due is None else str(round(self.due.timestamp() * 1_000_000))
        return f"{self.priority}.{due}.{self.id}"

    @classmethod
    def parse(cls, raw: str) -> After:
        found = _AFTER.fullmatch(raw)
        if found is None:
            raise ValueError(raw)
        priority, due, ticket = found.groups()
        at = None if due == "-" else datetime.fromtimestamp(int(due) / 1_000_000, UTC)
        return cls(priority, at, int(ticket))


_AFTER = re.compile(r"(P[0-9])\.(-|[0-9]{1,18})\.([0-9]{1,18})")
Cursor = int | After  # newest: the id to page on; urgent: the place after which the next page starts


def parse_cursor(sort: Sort, raw: str) -> Cursor:
    """A page's Next link as `page` takes it back; ValueError when it is not one."""
    if sort == "newest":
        if not raw.isdigit() or len(raw) > 18:
            raise ValueError(raw)
        return int(raw)
    return After.parse(raw)


@dataclass(frozen=True, slots=True)
class QueuePage:
    tickets: list[TicketView]
    next_cursor: Cursor | None


def due(ticket: TicketView) -> datetime | None:
    """The deadline that matters now: respond by until acknowledged, then resolve by; none once it is over."""
    if ticket.status not in ("open", "in_progress", "waiting"):
        return None
    if ticket.acknowledged_at is None and ticket.sla.respond_by is not None:
        return ticket.sla.respond_by
    return ticket.sla.resolve_by


def _after(place: After, due_at: ColumnElement[datetime]) -> ColumnElement[bool]:
    """The tickets behind `place` in the order priority, deadline (none last), newest first."""
    c = t.tickets.c
    if place.due is None:
        behind = and_(due_at.is_(None), c.id < place.id)
    else:
        behind = or_(due_at > place.due, due_at.is_(None), and_(due_at == place.due, c.id < place.id))
    return or_(c.priority > place.priority, and_(c.priority == place.priority, behind))


def _due_column() -> ColumnElement[datetime]:
    c = t.tickets.c
    return case((c.acknowledged_at.is_(None) & c.respond_by.is_not(None), c.respond_by), else_=c.resolve_by)


class Queue:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def page(self, filters: TicketFilters, sort: Sort, cursor: Cursor | None, limit: int = PAGE) -> QueuePage:
        c = t.tickets.c
        query = select(t.tickets).where(*conditions(filters, self._engines.dialect))
        if sort == "newest":
            query = query.order_by(c.id.desc())
            if isinstance(cursor, int):
                query = query.where(c.id < cursor)
        else:
            due_at = _due_column()  # also read back: the next page's cursor carries the last one's
            query = query.add_columns(due_at.label("due_at")).order_by(
                c.priority, due_at.asc().nulls_last(), c.id.desc()
            )
            if isinstance(cursor, After):
                query = query.where(_after(cursor, due_at))
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                rows = (await conn.execute(query.limit(limit + 1))).all()
        tickets = [TicketView.from_columns(r._mapping) for r in rows[:limit]]
        if len(rows) <= limit:
            return QueuePage(tickets, None)
        last = rows[limit - 1]
        return QueuePage(tickets, last.id if sort == "newest" else After(last.priority, last.due_at, last.id))

    async def changes(self) -> str:
        """Moves whenever a ticket is opened or changes (a history entry) or repeats (its `last_seen`)."""
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                newest = await conn.scalar(select(func.max(t.history.c.id)))
                seen = await conn.scalar(select(func.max(t.tickets.c.last_seen)))
        return f"{newest or 0}-{seen.timestamp() if seen else 0}"

    async def neighbours(self, ticket: TicketView) -> tuple[int | None, int | None]:
        """The key's ticket before this one and the one after it (ix_tickets_key_id)."""
        c = t.tickets.c
        key = c.dedup_key == ticket.dedup_key
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                before = await conn.scalar(select(func.max(c.id)).where(key, c.id < ticket.id))
                after = await conn.scalar(select(func.min(c.id)).where(key, c.id > ticket.id))
        return before, after
