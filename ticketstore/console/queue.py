"""The queue's reads: a filtered, sorted page of tickets, the "anything changed?" cursor, a ticket's neighbours.

Newest-first pages are keyed on the ticket id like the API's; "most urgent" (priority, then the nearest open
deadline) pages by offset, since its order moves as tickets are acknowledged. The change cursor is the newest
history entry and the newest `last_seen`: both indexed, so a poll costs two index look-ups, in any process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import case, func, select
from sqlalchemy.sql import ColumnElement

from ticketstore import tables as t
from ticketstore.api.queries import TicketFilters, conditions
from ticketstore.db import Engines, outage_is_unavailable
from ticketstore.view import TicketView

Sort = Literal["newest", "urgent"]
SORTS: tuple[Sort, ...] = ("newest", "urgent")
PAGE = 50


@dataclass(frozen=True, slots=True)
class QueuePage:
    tickets: list[TicketView]
    next_cursor: int | None  # newest: the id to page on; urgent: the offset of the next page


def due(ticket: TicketView) -> datetime | None:
    """The deadline that matters now: respond by until acknowledged, then resolve by; none once it is over."""
    if ticket.status not in ("open", "in_progress", "waiting"):
        return None
    if ticket.acknowledged_at is None and ticket.sla.respond_by is not None:
        return ticket.sla.respond_by
    return ticket.sla.resolve_by


def _due_column() -> ColumnElement[datetime]:
    c = t.tickets.c
    return case((c.acknowledged_at.is_(None) & c.respond_by.is_not(None), c.respond_by), else_=c.resolve_by)


class Queue:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def page(self, filters: TicketFilters, sort: Sort, cursor: int | None, limit: int = PAGE) -> QueuePage:
        c = t.tickets.c
        query = select(t.tickets).where(*conditions(filters, self._engines.dialect)).limit(limit + 1)
        if sort == "newest":
            query = query.order_by(c.id.desc())
            if cursor is not None:
                query = query.where(c.id < cursor)
        else:
            query = query.order_by(c.priority, _due_column().asc().nulls_last(), c.id.desc()).offset(cursor or 0)
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                rows = (await conn.execute(query)).all()
        tickets = [TicketView.from_columns(r._mapping) for r in rows[:limit]]
        more = len(rows) > limit
        if not more:
            return QueuePage(tickets, None)
        return QueuePage(tickets, tickets[-1].id if sort == "newest" else (cursor or 0) + limit)

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
