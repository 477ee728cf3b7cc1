"""Ticket retention: tickets resolved or closed longer ago than the retention go, with everything that points at them.

Small batches keep each write transaction short, so webhooks wait for the writer a few ms at most: the
candidates are found on the read connection (on SQLite a reader never blocks the writer), and the write
transaction only deletes them by id, through indexes (migration 0007), after checking each is still old and ended.
A ticket reopened in between is left alone. Processed alert ids are not touched: they expire on their own
(`ALERTDESK_RETENTION_DAYS`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, delete, or_, select, update

from ticketstore import tables as t
from ticketstore.db import Engines, outage_is_unavailable
from ticketstore.store import TicketStore

logger = logging.getLogger(__name__)

BATCH = 100  # tickets a transaction: about 12 ms of writing each on SQLite (500: about 32 ms)


@dataclass(frozen=True)
class Pruned:
    tickets: int
    batches: int
    writing_s: float  # time in write transactions, all batches together
    longest_batch_s: float  # the longest write transaction, for the log and the tests


class Retention:
    def __init__(
        self,
        store: TicketStore,
        engines: Engines,
        keep: timedelta,
        *,
        now: Callable[[], datetime],
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._engines = engines
        self._keep = keep
        self._now = now
        self._batch = batch

    async def run_once(self) -> Pruned:
        """Delete every expired ticket, a batch per transaction, yielding to the webhooks between batches."""
        cutoff = self._now() - self._keep
        deleted, batches, writing, longest, after = 0, 0, 0.0, 0.0, 0
        while ids := await self._candidates(cutoff, after):
            started = time.perf_counter()
            deleted += await self._store.run(functools.partial(_delete, candidates=ids, cutoff=cutoff))
            took = time.perf_counter() - started
            batches, writing, longest = batches + 1, writing + took, max(longest, took)
            after = ids[-1]
            await asyncio.sleep(0)
        if deleted:
            logger.info(
                "retention: deleted %d tickets ended before %s (longest batch %.1f ms)", deleted, cutoff, longest * 1e3
            )
        return Pruned(deleted, batches, writing, longest)

    async def _candidates(self, cutoff: datetime, after: int) -> list[int]:
        c = t.tickets.c
        query = select(c.id).where(c.id > after, _expired(cutoff)).order_by(c.id).limit(self._batch)
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                return list((await conn.execute(query)).scalars())


def _expired(cutoff: datetime) -> ColumnElement[bool]:
    c = t.tickets.c
    return or_(
        and_(c.status == "closed", c.closed_at < cutoff),
        and_(c.status == "resolved", c.resolved_at < cutoff),
    )


def _delete(conn: Connection, *, candidates: Sequence[int], cutoff: datetime) -> int:
    c = t.tickets.c
    ids = list(conn.execute(select(c.id).where(c.id.in_(candidates), _expired(cutoff))).scalars())
    if not ids:
        return 0
    conn.execute(update(t.tickets).where(c.previous_ticket_id.in_(ids)).values(previous_ticket_id=None))
    conn.execute(delete(t.history).where(t.history.c.ticket_id.in_(ids)))
    conn.execute(delete(t.episodes).where(t.episodes.c.ticket_id.in_(ids)))
    conn.execute(delete(t.notifications).where(t.notifications.c.ticket_id.in_(ids)))
    conn.execute(delete(t.tickets).where(c.id.in_(ids)))
    return len(ids)
