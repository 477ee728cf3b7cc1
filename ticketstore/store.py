"""The store's write side: apply a batch of ticket commands in one transaction, exactly once per alert id.

A batch costs a fixed handful of statements whatever its size: load the keys' latest tickets, the episode
links and the already-applied alert ids; run the lifecycle in memory; write tickets, history, links and
processed ids back. Skipping processed alert ids in the same transaction as the change is what makes a broker
redelivery or a client retry change nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from normalizers.schema import Kind, TicketCommand, Unavailable
from ticketstore import rows
from ticketstore import tables as t
from ticketstore.actions import Action, Conflict, TicketNotFound
from ticketstore.cache import TicketCache
from ticketstore.db import Engines, outage_is_unavailable
from ticketstore.lifecycle import KeyState, Lifecycle, Outcome
from ticketstore.nudge import Nudge
from ticketstore.policy import Policy
from ticketstore.ticket import TicketRow
from ticketstore.windows import WindowCache

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Applied:
    """The result of one command: the ticket it landed on and what happened (for metrics and answers)."""

    alert_ids: tuple[str, ...]
    ticket_id: int | None
    new_alerts: int
    opened: bool = False
    resolved: bool = False
    silenced: bool = False  # a maintenance window silenced the problem
    severity: str | None = None
    dead_letter: str | None = None  # the reason, when the command could never be applied


class TicketStore:
    def __init__(
        self, engines: Engines, lifecycle: Lifecycle, *, now: Clock, cache: bool = False, windows_every: float = 1.0
    ) -> None:
        """`cache`: keep active tickets between batches (SQLite only; see `ticketstore.cache`).

        `windows_every`: seconds the maintenance windows are kept in memory before being read again.
        """
        self._engines = engines
        self._lifecycle = lifecycle
        self._now = now
        self._cache = TicketCache() if cache and engines.dialect == "sqlite" else None
        self._windows = WindowCache(lifecycle.policy, windows_every)
        self._writing = asyncio.Lock()  # with a cache: one write transaction at a time (see `_batch`)
        self.commits = Nudge()  # told after each committed transaction: the chores look for new due work

    async def apply_batch(self, commands: Sequence[TicketCommand]) -> list[Applied]:
        """Apply `commands` (arrival order) in one transaction; if that fails, one by one, dead-lettering poison.

        Raises `Unavailable` when the database cannot be reached: nothing was applied then.
        """
        try:
            applied = await self._transaction_retried(commands)
            self.commits.notify()
            return applied
        except Unavailable:
            raise
        except SQLAlchemyError as exc:
            if len(commands) == 1:
                return [await self._dead_letter(commands[0], exc)]
            logger.warning("batch of %d failed (%s); applying one by one", len(commands), exc.__class__.__name__)
        results: list[Applied] = []
        for cmd in commands:
            try:
                results.extend(await self._transaction_retried([cmd]))
            except Unavailable:
                raise
            except SQLAlchemyError as exc:
                results.append(await self._dead_letter(cmd, exc))
        self.commits.notify()
        return results

    async def ping(self) -> bool:
        """Readiness: can we reach the database now?"""
        try:
            async with self._engines.read.connect() as conn:
                await conn.execute(select(1))
            return True
        except (SQLAlchemyError, OSError):
            return False

    async def act(self, ticket_id: int, action: Action, *, once: str | None = None) -> bool:
        """Run an operator action on one ticket, locked for update, and write it with its history.

        `once`: an id of the request (e.g. a tracker's event id); an action already applied under it is skipped,
        in the same transaction, so a redelivered event changes nothing. False when skipped.
        """
        now, policy = self._now(), self._lifecycle.policy

        def run(conn: Connection) -> bool:
            row = conn.execute(rows.for_update(conn, select(t.tickets).where(t.tickets.c.id == ticket_id))).first()
            if row is None:
                raise TicketNotFound(ticket_id)
            if once is not None and rows.processed(conn, [once]):
                return False
            ticket = TicketRow.from_row(row)
            before = {id(ticket): ticket.snapshot()}
            action(ticket, now, policy)
            try:
                rows.write(conn, policy, [ticket], before, now, processed=[(once, ticket, "action")] if once else ())
            except IntegrityError:
                raise Conflict(f"another ticket is already active for {ticket.dedup_key}") from None
            return True

        return await self._run(run)

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        """(status, severity) -> number of tickets, for the `alertdesk_tickets` gauge."""
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                return await ticket_counts(conn)

    async def prune_processed(self, older_than: timedelta) -> int:
        """Forget idempotency records past the retention period; the tickets keep their counts."""
        cutoff = self._now() - older_than

        def run(conn: Connection) -> int:
            result = conn.execute(delete(t.processed_alerts).where(t.processed_alerts.c.processed_at < cutoff))
            return int(result.rowcount or 0)

        return await self._run(run)

    async def settle_flapping(self) -> int:
        """Clear the flapping flag of tickets quiet for long enough; the last state applies (OK resolves)."""
        now, policy = self._now(), self._lifecycle.policy

        def run(conn: Connection) -> int:
            found = conn.execute(rows.for_update(conn, select(t.tickets).where(t.tickets.c.flapping)))
            tickets = [TicketRow.from_row(r) for r in found]
            before = {id(x): x.snapshot() for x in tickets}
            changed = [x for x in tickets if self._lifecycle.settle_flapping(x, now)]
            rows.write(conn, policy, tickets, before, now)
            return len(changed)

        return await self._run(run)

    @property
    def policy(self) -> Policy:
        return self._lifecycle.policy

    @property
    def dialect(self) -> str:
        return self._engines.dialect

    def now(self) -> datetime:
        return self._now()

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """A read outside any write transaction (what is due next); `fn` runs in a thread with the connection."""
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                return await conn.run_sync(fn)

    async def run(self, fn: Callable[[Connection], T], *, wrote: Callable[[T], bool] | None = None) -> T:
        """A transaction outside the batches (operator actions, scans); `fn` runs in a thread with the connection.

        `wrote`: whether a result changed anything, for a round that usually finds nothing to do (it then wakes
        no chore).
        """
        return await self._run(fn, wrote)

    # --- one transaction ----------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Connection], T], wrote: Callable[[T], bool] | None = None) -> T:
        """A transaction outside the batches: what it writes is not in the cache, so the cache goes."""
        if self._cache is None:
            result = await self._transact(fn)
        else:
            async with self._writing:
                self._cache.clear()
                result = await self._transact(fn)
        if wrote is None or wrote(result):
            self.commits.notify()
        return result

    async def _transact(self, fn: Callable[[Connection], T]) -> T:
        with outage_is_unavailable():
            return await self._engines.transact(fn)

    async def _transaction_retried(self, commands: Sequence[TicketCommand]) -> list[Applied]:
        """Retry once on a unique-index race, which re-reads the state the other writer committed.

        On PostgreSQL two transactions can both find no ticket for a key (there is no row to lock yet) and both
        open one, or both apply the same alert id: the second blocks on the index, then fails. Its retry finds
        the first one's ticket (locked this time) or its processed id, so nothing is lost or counted twice.
        """
        try:
            return await self._batch(commands)
        except IntegrityError:
            logger.info("lost a race on %d command(s); retrying once", len(commands))
        except DBAPIError as exc:
            if "InvalidCachedStatement" not in type(exc.orig).__name__:
                raise
            # asyncpg's prepared statements went stale after a schema change (a migration, an operator's ALTER):
            # SQLAlchemy has dropped its cache, so the same transaction now works.
            logger.info("statement cache invalidated by a schema change; retrying once")
        return await self._batch(commands)

    async def _batch(self, commands: Sequence[TicketCommand]) -> list[Applied]:
        """One transaction; the cache learns its tickets only once it committed, and forgets all if it failed.

        With a cache, transactions take turns: two batches must not work on the same cached ticket at once.
        """
        cache = self._cache
        if cache is None:
            return (await self._transact(lambda conn: self._transaction(conn, commands)))[0]
        async with self._writing:
            try:
                applied, states = await self._transact(lambda conn: self._transaction(conn, commands))
            except BaseException:
                cache.clear()
                raise
            cache.keep(states)
            return applied

    def _transaction(
        self, conn: Connection, commands: Sequence[TicketCommand]
    ) -> tuple[list[Applied], dict[str, KeyState]]:
        now, policy = self._now(), self._lifecycle.policy
        done = rows.processed(conn, [i for c in commands for i in c.alert_ids])
        states, loaded = rows.load(conn, commands, policy.longest_flapping_window(), self._cache)
        before = {id(x): x.snapshot() for x in loaded}
        windows = self._windows.current(conn, now)
        applied: list[tuple[TicketCommand, Outcome | None, int]] = []
        new_tickets: list[TicketRow] = []
        processed: list[tuple[str, TicketRow | None, str]] = []
        for cmd in commands:
            fresh = [i for i in cmd.alert_ids if i not in done]
            if not fresh:
                applied.append((cmd, None, 0))
                continue
            done.update(fresh)
            kind = cmd.alert.kind
            count = len(fresh) if kind is Kind.PROBLEM else 0
            outcome = self._lifecycle.apply(states[cmd.dedup_key], cmd, count, windows)
            if outcome.opened and outcome.ticket is not None:
                new_tickets.append(outcome.ticket)
            processed.extend((i, outcome.ticket, kind.value) for i in fresh)
            applied.append((cmd, outcome, len(fresh)))
        links = [(key, ep, ticket) for key, s in states.items() for ep, ticket in s.new_episodes]
        rows.write(conn, policy, loaded, before, now, new=new_tickets, links=links, processed=processed)
        return [_applied(cmd, outcome, fresh) for cmd, outcome, fresh in applied], states

    async def _dead_letter(self, cmd: TicketCommand, exc: Exception) -> Applied:
        reason = f"{exc.__class__.__name__}: {exc}"[:2000]
        logger.error("dead-lettering alerts %s for %s: %s", ",".join(cmd.alert_ids), cmd.dedup_key, reason)
        row = {"alert_id": cmd.alert.id, "at": self._now(), "reason": reason, "payload": cmd.model_dump_json()}
        await self._run(lambda conn: conn.execute(insert(t.dead_letters), [row]))
        return Applied(cmd.alert_ids, None, 0, dead_letter=reason)


async def ticket_counts(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """(status, severity) -> number of tickets, counted by the database (the gauge and `/api/stats`)."""
    c = t.tickets.c
    counted = await conn.execute(select(c.status, c.severity, func.count()).group_by(c.status, c.severity))
    return {(status, severity): int(n) for status, severity, n in counted}


def _applied(cmd: TicketCommand, outcome: Outcome | None, fresh: int) -> Applied:
    ticket = outcome.ticket if outcome is not None else None
    if outcome is None or ticket is None:
        return Applied(cmd.alert_ids, None, fresh)
    return Applied(
        cmd.alert_ids,
        ticket.id,
        fresh,
        opened=outcome.opened,
        resolved=outcome.resolved,
        silenced=outcome.silenced,
        severity=ticket.severity,
    )
