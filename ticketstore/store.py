"""The store's write side: apply a batch of ticket commands in one transaction, exactly once per alert id.

A batch costs a fixed handful of statements whatever its size: load the keys' latest tickets, the episode
links and the already-applied alert ids; run the lifecycle in memory; write tickets, history, links and
processed ids back. Skipping processed alert ids in the same transaction as the change is what makes a broker
redelivery or a client retry change nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from normalizers.schema import Kind, Severity, TicketCommand, Unavailable
from ticketstore import tables as t
from ticketstore.db import Engines
from ticketstore.escalation import review
from ticketstore.lifecycle import KeyState, Lifecycle, Outcome
from ticketstore.operator import Action, Conflict, TicketNotFound
from ticketstore.policy import Policy
from ticketstore.ticket import Notice, TicketRow, ticket_number
from ticketstore.views import TicketView

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
    severity: str | None = None
    dead_letter: str | None = None  # the reason, when the command could never be applied


class TicketStore:
    def __init__(self, engines: Engines, lifecycle: Lifecycle, *, now: Clock) -> None:
        self._engines = engines
        self._lifecycle = lifecycle
        self._now = now

    async def apply_batch(self, commands: Sequence[TicketCommand]) -> list[Applied]:
        """Apply `commands` (arrival order) in one transaction; if that fails, one by one, dead-lettering poison.

        Raises `Unavailable` when the database cannot be reached: nothing was applied then.
        """
        try:
            return await self._transaction_retried(commands)
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
        return results

    async def ping(self) -> bool:
        """Readiness: can we reach the database now?"""
        try:
            async with self._engines.read.connect() as conn:
                await conn.execute(select(1))
            return True
        except (SQLAlchemyError, OSError):
            return False

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        """(status, severity) -> number of tickets, for the `alertdesk_tickets` gauge."""
        c = t.tickets.c
        with _translate():
            async with self._engines.read.connect() as conn:
                rows = await conn.execute(select(c.status, c.severity, func.count()).group_by(c.status, c.severity))
                return {(status, severity): int(count) for status, severity, count in rows}

    async def act(self, ticket_id: int, action: Action) -> None:
        """Run an operator action on one ticket, locked for update, and write it with its history."""
        now, policy = self._now(), self._lifecycle.policy

        def run(conn: Connection) -> None:
            row = conn.execute(_for_update(conn, select(t.tickets).where(t.tickets.c.id == ticket_id))).first()
            if row is None:
                raise TicketNotFound(ticket_id)
            ticket = TicketRow.from_row(row)
            before = {id(ticket): ticket.values()}
            action(ticket, now, policy)
            try:
                _write(conn, policy, [], _changes([ticket], before), [ticket], [], [], now)
            except IntegrityError:
                raise Conflict(f"another ticket is already active for {ticket.dedup_key}") from None

        await self._run(run)

    async def escalate_due(self, limit: int = 100) -> list[tuple[Notice, str]]:
        """Claim tickets with a due deadline and fire what is due, once; returns the events with their severity.

        The claim is the ticket row lock (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite), so
        two workers never fire the same step, and `review` sees an acknowledgement committed before the claim.
        """
        now, policy = self._now(), self._lifecycle.policy
        c = t.tickets.c
        due = or_(
            and_(c.next_escalation_at <= now, c.acknowledged_at.is_(None)),
            and_(c.respond_by <= now, c.acknowledged_at.is_(None), c.response_breached.is_(False)),
            and_(c.resolve_by <= now, c.resolution_breached.is_(False)),
        )
        query = (
            select(t.tickets)
            .where(c.status.in_(t.ACTIVE_STATUSES), c.paused_since.is_(None), due)
            .order_by(c.id)
            .limit(limit)
        )
        if self._engines.dialect != "sqlite":
            query = query.with_for_update(skip_locked=True)

        def run(conn: Connection) -> list[tuple[Notice, str]]:
            tickets = [TicketRow.from_row(r) for r in conn.execute(query)]
            before = {id(x): x.values() for x in tickets}
            changed = [x for x in tickets if review(x, policy, now)]
            fired = [(notice, x.peak_severity) for x in changed for notice in x.notices]
            _write(conn, policy, [], _changes(changed, before), changed, [], [], now)
            return fired

        return await self._run(run)

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
            rows = conn.execute(_for_update(conn, select(t.tickets).where(t.tickets.c.flapping)))
            tickets = [TicketRow.from_row(r) for r in rows]
            before = {id(x): x.values() for x in tickets}
            changed = [x for x in tickets if self._lifecycle.settle_flapping(x, now)]
            _write(conn, policy, [], _changes(tickets, before), tickets, [], [], now)
            return len(changed)

        return await self._run(run)

    # --- one transaction ----------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Connection], T]) -> T:
        with _translate():
            return await self._engines.transact(fn)

    async def _transaction_retried(self, commands: Sequence[TicketCommand]) -> list[Applied]:
        """Retry once on a unique-index race, which re-reads the state the other writer committed.

        On PostgreSQL two transactions can both find no ticket for a key (there is no row to lock yet) and both
        open one, or both apply the same alert id: the second blocks on the index, then fails. Its retry finds
        the first one's ticket (locked this time) or its processed id, so nothing is lost or counted twice.
        """
        try:
            return await self._run(lambda conn: self._transaction(conn, commands))
        except IntegrityError:
            logger.info("lost a race on %d command(s); retrying once", len(commands))
        except DBAPIError as exc:
            if "InvalidCachedStatement" not in type(exc.orig).__name__:
                raise
            # asyncpg's prepared statements went stale after a schema change (a migration, an operator's ALTER):
            # SQLAlchemy has dropped its cache, so the same transaction now works.
            logger.info("statement cache invalidated by a schema change; retrying once")
        return await self._run(lambda conn: self._transaction(conn, commands))

    def _transaction(self, conn: Connection, commands: Sequence[TicketCommand]) -> list[Applied]:
        now, policy = self._now(), self._lifecycle.policy
        done = _processed(conn, [i for c in commands for i in c.alert_ids])
        states, loaded = _load(conn, commands, policy.longest_flapping_window())
        before = {id(x): x.values() for x in loaded}
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
            outcome = self._lifecycle.apply(states[cmd.dedup_key], cmd, len(fresh) if kind is Kind.PROBLEM else 0)
            if outcome.opened and outcome.ticket is not None:
                new_tickets.append(outcome.ticket)
            processed.extend((i, outcome.ticket, kind.value) for i in fresh)
            applied.append((cmd, outcome, len(fresh)))
        links = [(key, ep, ticket) for key, s in states.items() for ep, ticket in s.new_episodes]
        _write(conn, policy, new_tickets, _changes(loaded, before), [*loaded, *new_tickets], links, processed, now)
        return [_applied(cmd, outcome, fresh) for cmd, outcome, fresh in applied]

    async def _dead_letter(self, cmd: TicketCommand, exc: Exception) -> Applied:
        reason = f"{exc.__class__.__name__}: {exc}"[:2000]
        logger.error("dead-lettering alerts %s for %s: %s", ",".join(cmd.alert_ids), cmd.dedup_key, reason)
        row = {"alert_id": cmd.alert.id, "at": self._now(), "reason": reason, "payload": cmd.model_dump_json()}
        await self._run(lambda conn: conn.execute(insert(t.dead_letters), [row]))
        return Applied(cmd.alert_ids, None, 0, dead_letter=reason)


def _applied(cmd: TicketCommand, outcome: Outcome | None, fresh: int) -> Applied:
    ticket = outcome.ticket if outcome is not None else None
    if outcome is None or ticket is None:
        return Applied(cmd.alert_ids, None, fresh)
    return Applied(
        cmd.alert_ids, ticket.id, fresh, opened=outcome.opened, resolved=outcome.resolved, severity=ticket.severity
    )


# --- loading ----------------------------------------------------------------------------------------------


def _processed(conn: Connection, alert_ids: list[str]) -> set[str]:
    if not alert_ids:
        return set()
    column = t.processed_alerts.c.alert_id
    rows = conn.execute(select(column).where(column.in_(alert_ids)))
    return {r[0] for r in rows}


def _load(
    conn: Connection, commands: Sequence[TicketCommand], flap_window: timedelta
) -> tuple[dict[str, KeyState], list[TicketRow]]:
    """Each key's latest ticket (locked), the tickets of the episodes mentioned, recent resolutions."""
    keys = list(dict.fromkeys(c.dedup_key for c in commands))
    c = t.tickets.c
    newest = select(func.max(c.id)).where(c.dedup_key.in_(keys)).group_by(c.dedup_key)
    by_id = {
        r.id: TicketRow.from_row(r) for r in conn.execute(_for_update(conn, select(t.tickets).where(c.id.in_(newest))))
    }
    states = {key: KeyState() for key in keys}
    for ticket in by_id.values():
        states[ticket.dedup_key].latest = ticket

    wanted = {(cmd.dedup_key, cmd.alert.episode_id) for cmd in commands if cmd.alert.episode_id is not None}
    if wanted:
        e = t.episodes.c
        links = (
            conn.execute(
                select(e.dedup_key, e.episode_id, e.ticket_id).where(tuple_(e.dedup_key, e.episode_id).in_(wanted))
            )
        ).all()
        missing = {link.ticket_id for link in links} - by_id.keys()
        if missing:
            rows = conn.execute(_for_update(conn, select(t.tickets).where(c.id.in_(missing))))
            by_id.update({r.id: TicketRow.from_row(r) for r in rows})
        for link in links:
            states[link.dedup_key].episodes[link.episode_id] = by_id[link.ticket_id]

    idle = [key for key, s in states.items() if s.latest is not None and not s.latest.active]
    if idle:
        oldest = min(cmd.alert.received_at for cmd in commands) - flap_window
        rows = conn.execute(select(c.dedup_key, c.resolved_at).where(c.dedup_key.in_(idle), c.resolved_at >= oldest))
        for row in rows:
            states[row.dedup_key].recent_resolutions.append(row.resolved_at)
    return states, list(by_id.values())


def _for_update(conn: Connection, query: Any) -> Any:
    return query if conn.dialect.name == "sqlite" else query.with_for_update()


# --- writing ----------------------------------------------------------------------------------------------

Changes = dict[tuple[str, ...], list[dict[str, Any]]]  # changed columns -> one parameter set per ticket


def _changes(tickets: Iterable[TicketRow], before: dict[int, dict[str, Any]]) -> Changes:
    """The columns each ticket changed, grouped so each group is one executemany: a repeat writes two columns."""
    groups: Changes = {}
    for ticket in tickets:
        old = before[id(ticket)]
        changed = {k: v for k, v in ticket.values().items() if old[k] != v}
        if changed:
            groups.setdefault(tuple(sorted(changed)), []).append(
                {"b_id": ticket.id, **{f"b_{k}": v for k, v in changed.items()}}
            )
    return groups


def _update(columns: tuple[str, ...]) -> Any:
    return (
        update(t.tickets).where(t.tickets.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
    )


def _write(
    conn: Connection,
    policy: Policy,
    new: list[TicketRow],
    changes: Changes,
    touched: Iterable[TicketRow],
    links: list[tuple[str, str, TicketRow]],
    processed: list[tuple[str, TicketRow | None, str]],
    now: datetime,
) -> None:
    for columns, params in changes.items():  # first: a resolved ticket must leave the active slot to its successor
        conn.execute(_update(columns), params)
    _insert_new(conn, new)
    history = [
        {"ticket_id": h.ticket.id, "at": h.at, "kind": h.kind, "actor": h.actor, "detail": h.detail}
        for x in touched
        for h in x.history
    ]
    if history:
        conn.execute(insert(t.history), history)
    if links:
        conn.execute(insert(t.episodes), [{"dedup_key": k, "episode_id": ep, "ticket_id": x.id} for k, ep, x in links])
    outbox = [row for x in touched for row in _notifications(x, policy, now)]
    if outbox:
        conn.execute(insert(t.notifications), outbox)
    if processed:
        conn.execute(
            insert(t.processed_alerts),
            [
                {"alert_id": i, "ticket_id": x.id if x else None, "kind": kind, "processed_at": now}
                for i, x, kind in processed
            ],
        )
    for x in touched:
        x.history.clear()
        x.notices.clear()


def _notifications(ticket: TicketRow, policy: Policy, now: datetime) -> list[dict[str, Any]]:
    """Outbox rows for the ticket's events, written in the same transaction as the change that caused them."""
    if not ticket.notices:
        return []
    rule = policy.for_severity(Severity(ticket.peak_severity))
    payload: str | None = None
    rows = []
    for notice in ticket.notices:
        if notice.event == "escalated":
            channels = rule.escalation[notice.level - 1].notify if 0 < notice.level <= len(rule.escalation) else ()
        else:
            channels = rule.channels_for(notice.event)
        if channels and payload is None:
            payload = TicketView.from_columns(ticket.values()).model_dump_json()
        for channel in channels:
            rows.append(
                {
                    "ticket_id": ticket.id,
                    "event": notice.event,
                    "level": notice.level,
                    "channel": channel,
                    "idempotency_key": f"{ticket_number(ticket.id or 0)}:{notice.event}:{notice.tag}",
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                }
            )
    return rows


def _insert_new(conn: Connection, new: list[TicketRow]) -> None:
    """Insert new tickets in creation order; one that follows another new ticket waits for that one's id."""
    pending = list(new)
    while pending:
        ready = [x for x in pending if x.previous is None or x.previous.id is not None]
        rows = [{k: v for k, v in x.values().items() if k != "id"} for x in ready]
        result = conn.execute(insert(t.tickets).returning(t.tickets.c.id, sort_by_parameter_order=True), rows)
        for ticket, row in zip(ready, result.all(), strict=True):
            ticket.id = row.id
            ticket.previous = None
        pending = [x for x in pending if x.id is None]


class _translate:
    """Database errors that mean "cannot reach it now" become `Unavailable`; the rest stay as they are."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, IntegrityError):
            return
        if isinstance(exc, OperationalError | OSError | ConnectionError) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            raise Unavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc
