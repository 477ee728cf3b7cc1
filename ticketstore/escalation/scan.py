"""The escalation scan: claim the tickets with a due deadline and fire what is due, exactly once.

The claim is the ticket row lock (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite), so two
workers never fire the same step, and `review` sees an acknowledgement committed before the claim.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from ticketstore import rows
from ticketstore import tables as t
from ticketstore.escalation.steps import review
from ticketstore.store import TicketStore
from ticketstore.ticket import Notice, TicketRow

c = t.tickets.c
# Each deadline column, and when it still counts: the due ones are those whose time has come.
DEADLINES = (
    (c.next_escalation_at, c.acknowledged_at.is_(None)),
    (c.respond_by, and_(c.acknowledged_at.is_(None), c.response_breached.is_(False))),
    (c.resolve_by, c.resolution_breached.is_(False)),
)
WATCHED = (c.status.in_(t.ACTIVE_STATUSES), c.paused_since.is_(None))  # a paused ticket's clocks stand still


async def next_due(store: TicketStore) -> datetime | None:
    """The earliest deadline still to fire (perhaps already past), or None: the scan can sleep until then."""
    query = select(*(func.min(column).filter(counts) for column, counts in DEADLINES)).where(*WATCHED)

    def run(conn: Connection) -> datetime | None:
        times = [x for x in conn.execute(query).one() if x is not None]
        return min(times, default=None)

    return await store.read(run)


async def escalate_due(store: TicketStore, limit: int = 100) -> list[tuple[Notice, str]]:
    """Fire what is due on up to `limit` tickets; returns the events fired with each ticket's peak severity."""
    now, policy = store.now(), store.policy
    due = or_(*(and_(column <= now, counts) for column, counts in DEADLINES))
    query = select(t.tickets).where(*WATCHED, due).order_by(c.id).limit(limit)

    def run(conn: Connection) -> list[tuple[Notice, str]]:
        tickets = [TicketRow.from_row(r) for r in conn.execute(rows.for_update(conn, query, skip_locked=True))]
        before = {id(x): x.snapshot() for x in tickets}
        changed = [x for x in tickets if review(x, policy, now)]
        fired = [(notice, x.peak_severity) for x in changed for notice in x.notices]
        rows.write(conn, policy, changed, before, now)
        return fired

    return await store.run(run, wrote=bool)
