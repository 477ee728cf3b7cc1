"""A maintenance window's start and end on the tickets: those it silenced resume at its end, each exactly once.

A window is over when its end passes, when someone ends it, or — after a restart or an outage — when the chore
first looks again; all three look the same here: a ticket whose window no longer covers now. The chore claims such
tickets with the row lock (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite) as the escalation
scan does, so with several store processes each ticket resumes once: unsuppressed (unless the source's downtime
goes on), deadlines moved by the paused time, its held `opened` notification written to the outbox. A ticket that
another window still covers moves to that window instead.

A window that starts (or is created) while a matching ticket is already active silences that ticket too, so it
stops escalating: `silence_open` looks once per window (per weekly occurrence) and store process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from fnmatch import fnmatchcase

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.engine import Connection

from ticketstore import rows
from ticketstore import tables as t
from ticketstore.maintenance import Window, fields_of
from ticketstore.store import TicketStore
from ticketstore.ticket import TicketRow
from ticketstore.windows import not_over, policy_zone

Seen = set[tuple[int, date | None]]  # (window, local day of a weekly occurrence) already applied to open tickets


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
            other = next((x for x in windows if x.matches(fields_of(ticket))), None)
            if other is not None:
                over = f"maintenance window {ticket.maintenance_window_id} is over; still in {other.describe()}"
                ticket.log(now, "suppressed", "maintenance", over)
                ticket.maintenance_window_id = other.id
                continue
            ticket.leave_maintenance(now, f"maintenance window {ticket.maintenance_window_id} is over", policy)
            resumed += 1
        rows.write(conn, policy, tickets, before, now)
        return Round(resumed, len(windows))

    return await store.run(run, wrote=lambda r: r.resumed > 0)


async def next_window_change(store: TicketStore) -> datetime | None:
    """When a window next starts or ends (the chore sleeps until then, or until a commit of this process)."""
    now, zone = store.now(), policy_zone(store.policy)

    def run(conn: Connection) -> datetime | None:
        return min((x for w in not_over(conn, now) if (x := w.next_change(now, zone)) is not None), default=None)

    return await store.read(run)


async def silence_open(store: TicketStore, seen: Seen, limit: int = 1000) -> int:
    """Silence the active tickets of windows that began covering since this process last looked.

    `seen` is the caller's memory of the windows (and weekly occurrences) done; it is updated once committed.
    """
    now, policy = store.now(), store.policy
    zone = policy_zone(policy)
    c = t.tickets.c

    def run(conn: Connection) -> tuple[int, Seen]:
        done: Seen = set()
        silenced = 0
        for window in not_over(conn, now):
            if not window.covers(now, zone):
                continue
            occurrence = (window.id, now.astimezone(zone).date() if window.recurrence else None)
            if occurrence in seen:
                continue
            query = (
                select(t.tickets)
                .where(c.status.in_(t.ACTIVE_STATUSES), c.maintenance_window_id.is_(None), *_prefilter(window))
                .order_by(c.id)
                .limit(limit)
            )
            found = list(conn.execute(rows.for_update(conn, query, skip_locked=True)))
            tickets = [x for x in map(TicketRow.from_row, found) if window.matches(fields_of(x))]
            before = {id(x): x.snapshot() for x in tickets}
            for ticket in tickets:
                ticket.enter_maintenance(now, window.id, window.describe())
            rows.write(conn, policy, tickets, before, now)
            silenced += len(tickets)
            if len(found) < limit:  # all of them (else: the rest next round)
                done.add(occurrence)
        return silenced, done

    silenced, done = await store.run(run, wrote=lambda r: r[0] > 0)
    seen |= done
    return silenced


def _prefilter(window: Window) -> Iterator[ColumnElement[bool]]:
    """The window's patterns as SQL `LIKE`, to narrow the rows read (`Window.matches` decides)."""
    for name, pattern in window.match.items():
        if "[" in pattern:
            continue  # a character class has no LIKE spelling
        escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        column = t.tickets.c[name]
        like = column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")
        yield or_(column.is_(None), like) if fnmatchcase("", pattern) else like
