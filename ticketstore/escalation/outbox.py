"""The notification outbox: rows written with the ticket change, claimed by lease, completed after sending.

Tracker calls (channel `tracker:<name>`) share it, claimed by their own loop, one row per ticket at a time and in
order: a record's comment must not arrive before the record exists.

A claim is a lease (`lease_until`), not a lock held while sending: a worker that dies mid-send leaves rows that
another worker takes once the lease has run out. Delivery is at-least-once; the stable idempotency key lets a
receiver drop the rare repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update

from ticketstore import tables as t
from ticketstore.db import Engines
from ticketstore.rows import for_update

n = t.notifications.c
TRACKER = "tracker:"  # channel prefix of tracker calls


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    ticket_id: int
    event: str
    level: int
    channel: str
    idempotency_key: str
    payload: str
    attempts: int  # including this one


@dataclass(frozen=True, slots=True)
class Result:
    pending: Pending
    error: str | None  # None: delivered
    retry_in: timedelta | None = None  # the next attempt's delay when the other side said (Retry-After)


async def claim(
    engines: Engines, now: datetime, *, limit: int, lease: timedelta, trackers: bool = False
) -> list[Pending]:
    """Lease up to `limit` due rows (notifications, or with `trackers` tracker calls); each claim is an attempt.

    A tracker call waits until the earlier calls of its ticket are done (sent or given up).
    """
    if trackers:
        earlier = t.notifications.alias("earlier")
        e = earlier.c
        first = ~exists().where(
            and_(e.ticket_id == n.ticket_id, e.channel == n.channel, e.status == "pending", e.id < n.id)
        )
        which = and_(n.channel.startswith(TRACKER), first)
    else:
        which = ~n.channel.startswith(TRACKER)
    due = (
        select(n.id)
        .where(
            n.status == "pending",
            n.next_attempt_at <= now,
            or_(n.lease_until.is_(None), n.lease_until < now),
            which,
        )
        .order_by(n.id)
        .limit(limit)
    )

    def run(conn: Connection) -> list[Any]:
        query = (
            update(t.notifications)
            .where(n.id.in_(for_update(conn, due, skip_locked=True)))
            .values(lease_until=now + lease, attempts=n.attempts + 1)
            .returning(n.id, n.ticket_id, n.event, n.level, n.channel, n.idempotency_key, n.payload, n.attempts)
        )
        return list(conn.execute(query).all())

    claimed = await engines.transact(run)
    return sorted((Pending(*row) for row in claimed), key=lambda p: p.id)


async def complete(
    engines: Engines, results: list[Result], now: datetime, *, max_attempts: int, backoff: timedelta
) -> None:
    """Record each outcome, and in the ticket's history what an operator needs to know."""
    history: list[dict[str, Any]] = []
    updates: list[tuple[int, dict[str, Any]]] = []
    for result in results:
        p = result.pending
        tracker = p.channel.startswith(TRACKER)
        what = f"{p.event} (level {p.level}) via {p.channel}"
        failed = "tracker_failed" if tracker else "notification_failed"
        if result.error is None:
            values: dict[str, Any] = {"status": "sent", "sent_at": now, "lease_until": None, "last_error": None}
            if not tracker:  # a tracker call wrote its line with the remote key (trackers/dispatch.py)
                history.append(
                    history_entry(
                        p, now, "notified", what + (f" after {p.attempts} attempts" if p.attempts > 1 else "")
                    )
                )
        elif p.attempts >= max_attempts:
            values = {"status": "failed", "lease_until": None, "last_error": result.error}
            history.append(
                history_entry(p, now, failed, f"{what}: gave up after {p.attempts} attempts: {result.error}")
            )
        else:
            delay = result.retry_in or min(backoff * 2 ** (p.attempts - 1), timedelta(minutes=15))
            values = {"next_attempt_at": now + delay, "lease_until": None, "last_error": result.error}
            if p.attempts == 1 or tracker:  # a tracker's every failure is in the history (CONTRACT §7)
                history.append(
                    history_entry(
                        p, now, failed, f"{what}: {result.error}; retrying" + (f" in {delay}" if tracker else "")
                    )
                )
        updates.append((p.id, values))

    def write(conn: Connection) -> None:
        for row_id, values in updates:
            conn.execute(update(t.notifications).where(n.id == row_id).values(values))
        if history:
            conn.execute(insert(t.history), history)

    await engines.transact(write)


async def next_due(engines: Engines) -> datetime | None:
    """When the next pending row can be claimed (its next attempt, or its lease running out), or None."""
    pending = n.status == "pending"
    query = select(
        func.min(n.next_attempt_at).filter(pending, n.lease_until.is_(None)),
        func.min(func.coalesce(n.lease_until, n.next_attempt_at)).filter(pending, n.lease_until.is_not(None)),
    )
    async with engines.read.connect() as conn:
        times = [x for x in (await conn.execute(query)).one() if x is not None]
    return min(times, default=None)


async def pending_count(engines: Engines) -> int:
    async with engines.read.connect() as conn:
        return int((await conn.execute(select(func.count()).where(n.status == "pending"))).scalar_one())


def history_entry(p: Pending, at: datetime, kind: str, detail: str) -> dict[str, Any]:
    """A `ticket_history` row about the ticket of `p`, written by the system (no actor)."""
    return {"ticket_id": p.ticket_id, "at": at, "kind": kind, "actor": None, "detail": detail[:2000]}
