"""Reading and writing the rows of one store transaction.

`load` brings each key's latest ticket (locked), the tickets of the episodes mentioned and recent resolutions;
`write` puts back only the columns that changed, the new tickets, their history, episode links, processed alert
ids and the notifications to send — a fixed handful of statements per batch, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection

from normalizers.schema import Severity, TicketCommand
from ticketstore import tables as t
from ticketstore.lifecycle import KeyState
from ticketstore.policy import Policy
from ticketstore.ticket import TicketRow, ticket_number
from ticketstore.views import TicketView


def processed(conn: Connection, alert_ids: list[str]) -> set[str]:
    if not alert_ids:
        return set()
    column = t.processed_alerts.c.alert_id
    rows = conn.execute(select(column).where(column.in_(alert_ids)))
    return {r[0] for r in rows}


def load(
    conn: Connection, commands: Sequence[TicketCommand], flap_window: timedelta
) -> tuple[dict[str, KeyState], list[TicketRow]]:
    """Each key's latest ticket (locked), the tickets of the episodes mentioned, recent resolutions."""
    keys = list(dict.fromkeys(c.dedup_key for c in commands))
    c = t.tickets.c
    newest = select(func.max(c.id)).where(c.dedup_key.in_(keys)).group_by(c.dedup_key)
    by_id = {
        r.id: TicketRow.from_row(r) for r in conn.execute(for_update(conn, select(t.tickets).where(c.id.in_(newest))))
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
            rows = conn.execute(for_update(conn, select(t.tickets).where(c.id.in_(missing))))
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


def for_update(conn: Connection, query: Any) -> Any:
    return query if conn.dialect.name == "sqlite" else query.with_for_update()


Changes = dict[tuple[str, ...], list[dict[str, Any]]]  # changed columns -> one parameter set per ticket


def changes(tickets: Iterable[TicketRow], before: dict[int, dict[str, Any]]) -> Changes:
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


def write(
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
