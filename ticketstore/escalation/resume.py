"""The end of a maintenance window: the tickets it silenced resume, each exactly once.

A window is over when its end passes, when someone ends it, or — after a restart or an outage — when the chore
first looks again; all three look the same here: a ticket whose window no longer covers now. The chore claims such
tickets with the row lock (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite) as the escalation
scan does, so with several store processes each ticket resumes once: unsuppressed (unless the source's downtime
goes on), deadlines moved by the paused time, its held `opened` notification written to the outbox. A ticket that
another window still covers moves to that window instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ticketstore import rows
from ticketstore import tables as t
from ticketstore.store import TicketStore
from ticketstore.ticket import TicketRow
from ticketstore.windows import not_over, policy_zone


@dataclass(frozen=True, slots=True)
class Round:
    resumed: int  # tickets resumed
    active_windows: int  # windows covering now (the gauge)


async def resume_ended(store: TicketStore, limit: int = 200) -> Round:
    """Resume up to `limit` tickets whose window is over."""
    now, policy = store.now(), store.policy
    zone = policy_zone(policy)
    c = t.tickets.c

    def run(conn: Connection) -> Round:
        windows = [x for x in not_over(conn, now) if x.covers(now, zone)]
        covering = [x.id for x in windows]
        query = select(t.tickets).where(c.maintenance_window_id.is_not(None))
        if covering:
            query = query.where(c.maintenance_window_id.not_in(covering))
        found = conn.execute(rows.for_update(conn, query.order_by(c.id).limit(limit), skip_locked=True))
        tickets = [TicketRow.from_row(r) for r in found]
        before = {id(x): x.snapshot() for x in tickets}
        resumed = 0
        for ticket in tickets:
            other = next((x for x in windows if x.matches(_fields(ticket))), None)
            if other is not None:
                over = f"maintenance window {ticket.maintenance_window_id} is over; still in {other.describe()}"
                ticket.log(now, "suppressed", "maintenance", over)
                ticket.maintenance_window_id = other.id
                continue
            ticket.leave_maintenance(now, f"maintenance window {ticket.maintenance_window_id} is over", policy)
            resumed += 1
        rows.write(conn, policy, tickets, before, now)
        return Round(resumed, len(windows))

    return await store.run(run)


def _fields(ticket: TicketRow) -> dict[str, str | None]:
    return {
        "source": ticket.source,
        "instance": ticket.instance,
        "host": ticket.host,
        "service": ticket.service,
        "dedup_key": ticket.dedup_key,
    }
