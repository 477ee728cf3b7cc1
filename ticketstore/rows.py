"""Reading and writing the rows of one store transaction.

`load` brings each key's latest ticket (locked), the tickets of the episodes mentioned and recent resolutions;
`write` puts back only the columns that changed, the new tickets, their history, episode links, processed alert
ids and the notifications to send — a fixed handful of statements per batch, whatever its size.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection

from normalizers.schema import Kind, Severity, TicketCommand
from ticketstore import tables as t
from ticketstore.cache import TicketCache
from ticketstore.lifecycle import KeyState
from ticketstore.policy import Policy
from ticketstore.ticket import COLUMNS, TicketRow, ticket_number
from ticketstore.view import TicketView

# The statements of every batch, built once: SQLAlchemy then finds their compiled form without rebuilding them.
_c, _e = t.tickets.c, t.episodes.c
_PROCESSED = select(t.processed_alerts.c.alert_id).where(
    t.processed_alerts.c.alert_id.in_(bindparam("ids", expanding=True))
)
_NEWEST = select(func.max(_c.id)).where(_c.dedup_key.in_(bindparam("keys", expanding=True))).group_by(_c.dedup_key)
_LATEST = select(t.tickets).where(_c.id.in_(_NEWEST))
_BY_ID = select(t.tickets).where(_c.id.in_(bindparam("ids", expanding=True)))
_LINKS = select(_e.dedup_key, _e.episode_id, _e.ticket_id).where(
    tuple_(_e.dedup_key, _e.episode_id).in_(bindparam("pairs", expanding=True))
)
_RESOLUTIONS = select(_c.id, _c.dedup_key, _c.resolved_at).where(
    _c.dedup_key.in_(bindparam("keys", expanding=True)), _c.resolved_at >= bindparam("oldest")
)
_LATEST_LOCKED, _BY_ID_LOCKED = _LATEST.with_for_update(), _BY_ID.with_for_update()
_INSERT_TICKETS = insert(t.tickets).returning(t.tickets.c.id, sort_by_parameter_order=True)
_INSERT_HISTORY, _INSERT_LINKS = insert(t.history), insert(t.episodes)
_INSERT_NOTIFICATIONS, _INSERT_PROCESSED = insert(t.notifications), insert(t.processed_alerts)


def processed(conn: Connection, alert_ids: list[str]) -> set[str]:
    if not alert_ids:
        return set()
    return {r[0] for r in conn.execute(_PROCESSED, {"ids": alert_ids})}


def load(
    conn: Connection, commands: Sequence[TicketCommand], flap_window: timedelta, cache: TicketCache | None = None
) -> tuple[dict[str, KeyState], list[TicketRow]]:
    """Each key's latest ticket (locked), the tickets of the episodes mentioned, recent resolutions.

    Keys the `cache` knows are taken from it; the database is asked about the others only.
    """
    episodes: dict[str, set[str]] = {}
    for cmd in commands:
        known = episodes.setdefault(cmd.dedup_key, set())
        if cmd.alert.episode_id is not None:
            known.add(cmd.alert.episode_id)
    states: dict[str, KeyState] = {}
    if cache is not None:
        cache.check(conn)
        for key, wanted_here in episodes.items():
            if (state := cache.take(key, wanted_here)) is not None:
                states[key] = state
    cached = [s.latest for s in states.values() if s.latest is not None]
    keys = [key for key in episodes if key not in states]
    by_id: dict[int, TicketRow] = {}
    if keys:
        by_id = {
            r.id: TicketRow.from_row(r) for r in conn.execute(for_update(conn, _LATEST, _LATEST_LOCKED), {"keys": keys})
        }
        states.update((key, KeyState()) for key in keys)
        for ticket in by_id.values():
            states[ticket.dedup_key].latest = ticket
        _link_episodes(conn, states, {(key, ep) for key in keys for ep in episodes[key]}, by_id)
    _recent_resolutions(conn, commands, states, flap_window)
    return states, [*cached, *by_id.values()]


def _link_episodes(
    conn: Connection, states: dict[str, KeyState], wanted: set[tuple[str, str]], by_id: dict[int, TicketRow]
) -> None:
    if not wanted:
        return
    links = conn.execute(_LINKS, {"pairs": list(wanted)}).all()
    missing = {link.ticket_id for link in links} - by_id.keys()
    if missing:
        rows = conn.execute(for_update(conn, _BY_ID, _BY_ID_LOCKED), {"ids": list(missing)})
        by_id.update({r.id: TicketRow.from_row(r) for r in rows})
    for link in links:
        states[link.dedup_key].episodes[link.episode_id] = by_id[link.ticket_id]


def _recent_resolutions(
    conn: Connection, commands: Sequence[TicketCommand], states: dict[str, KeyState], flap_window: timedelta
) -> None:
    """The flapping count needs a key's recent resolutions whenever the batch may open a ticket after a resolve.

    Only one case is sure not to: repeats of the active ticket's own problem (a storm), which read none.
    """
    calm = {key for key, s in states.items() if s.latest is not None and s.latest.active and not s.latest.flapping}
    for cmd in commands:
        if cmd.dedup_key in calm and not _repeat(cmd, states[cmd.dedup_key]):
            calm.discard(cmd.dedup_key)
    keys = [key for key, s in states.items() if s.latest is not None and key not in calm]
    if not keys:
        return
    oldest = min(cmd.alert.received_at for cmd in commands) - flap_window
    for row in conn.execute(_RESOLUTIONS, {"keys": keys, "oldest": oldest}):
        states[row.dedup_key].recent_resolutions[row.id] = row.resolved_at


def _repeat(cmd: TicketCommand, state: KeyState) -> bool:
    """A problem that can only count on the active ticket: no other episode that could supersede it."""
    assert state.latest is not None
    episode = cmd.alert.episode_id
    return cmd.alert.kind is Kind.PROBLEM and (episode is None or episode == state.latest.episode_id)


def for_update(conn: Connection, query: Any, locked: Any = None, *, skip_locked: bool = False) -> Any:
    """`query` locking its rows (`locked`, when built already); SQLite's writer holds the whole database already.

    `skip_locked`: a claim by one of several workers (`FOR UPDATE SKIP LOCKED`) passes over rows another holds.
    """
    if conn.dialect.name == "sqlite":
        return query  # BEGIN IMMEDIATE
    if locked is not None:
        return locked
    return query.with_for_update(skip_locked=skip_locked)


Changes = dict[tuple[str, ...], list[dict[str, Any]]]  # changed columns -> one parameter set per ticket


def changes(tickets: Iterable[TicketRow], before: dict[int, tuple[Any, ...]]) -> Changes:
    """The columns each ticket changed since its `snapshot` in `before`, grouped so each group is one executemany:
    a repeat writes two columns. (Loaded tickets never follow a new one, so the snapshot is their row.)"""
    groups: Changes = {}
    for ticket in tickets:
        old, new = before[id(ticket)], ticket.snapshot()
        if old == new:
            continue
        changed = {name: v for name, was, v in zip(COLUMNS, old, new, strict=True) if was != v}
        groups.setdefault(tuple(changed), []).append({"b_id": ticket.id, **{f"b_{k}": v for k, v in changed.items()}})
    return groups


@functools.lru_cache(maxsize=256)
def _update(columns: tuple[str, ...]) -> Any:
    """One statement object per set of columns: SQLAlchemy compiles it once."""
    return (
        update(t.tickets).where(t.tickets.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
    )


def write(
    conn: Connection,
    policy: Policy,
    tickets: list[TicketRow],
    before: dict[int, tuple[Any, ...]],
    now: datetime,
    *,
    new: Sequence[TicketRow] = (),
    links: Sequence[tuple[str, str, TicketRow]] = (),
    processed: Sequence[tuple[str, TicketRow | None, str]] = (),
) -> None:
    """Write back `tickets` (their changes since `before`, their history and notifications), insert `new` ones,
    and record episode `links` and `processed` alert ids."""
    for columns, params in changes(tickets, before).items():  # first: a resolved ticket leaves the active slot
        executemany(conn, _update(columns), params)
    _insert_new(conn, new)
    touched = [*tickets, *new]
    history = [
        {"ticket_id": h.ticket.id, "at": h.at, "kind": h.kind, "actor": h.actor, "detail": h.detail}
        for x in touched
        for h in x.history
    ]
    if history:
        executemany(conn, _INSERT_HISTORY, history)
    if links:
        executemany(conn, _INSERT_LINKS, [{"dedup_key": k, "episode_id": ep, "ticket_id": x.id} for k, ep, x in links])
    outbox = [row for x in touched for row in (*_notifications(x, policy, now), *_tracker_events(x, now))]
    if outbox:
        executemany(conn, _INSERT_NOTIFICATIONS, outbox)
    if processed:
        executemany(
            conn,
            _INSERT_PROCESSED,
            [
                {"alert_id": i, "ticket_id": x.id if x else None, "kind": kind, "processed_at": now}
                for i, x, kind in processed
            ],
        )
    for x in touched:
        x.history.clear()
        x.notices.clear()


def executemany(conn: Connection, statement: Any, params: list[dict[str, Any]]) -> None:
    """`conn.execute(statement, params)`, cheaper on SQLite: compiled once, each row a tuple through the bind processors.

    SQLAlchemy builds and converts every parameter set through its compiled statement, which was the largest part
    of the embedded writer's CPU per alert; here the same type conversions (the bind processors of the compiled
    statement) run in one plain loop and the rows go to the driver's executemany. Every row has the keys of the
    first, as SQLAlchemy's executemany requires; a statement whose compiled form wants other values (a column
    default) takes SQLAlchemy's path.
    """
    if conn.dialect.name != "sqlite":
        conn.execute(statement, params)
        return
    plan = _plan(statement, tuple(params[0]), conn.dialect)
    if plan is None:
        conn.execute(statement, params)
        return
    sql, order = plan
    converted: dict[tuple[Any, datetime], Any] = {}  # a batch's rows mostly share one time (`now`): convert it once

    def convert(process: Any, value: Any) -> Any:
        if type(value) is not datetime:
            return process(value)
        out = converted.get((process, value), converted)
        if out is converted:
            out = converted[process, value] = process(value)
        return out

    conn.exec_driver_sql(
        sql,
        [
            tuple(row[name] if process is None else convert(process, row[name]) for name, process in order)
            for row in params
        ],
    )


@functools.lru_cache(maxsize=256)
def _plan(statement: Any, keys: tuple[str, ...], dialect: Any) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """The SQL and, per positional parameter, its key and bind processor; None when they are not exactly `keys`."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if statement.is_insert else None)
    names = compiled.positiontup or []
    if sorted(names) != sorted(keys):
        return None
    processors = compiled._bind_processors
    return compiled.string, tuple((name, processors.get(name)) for name in names)


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


# History kinds a tracker record follows (CONTRACT §7); repeats, flapping and the like stay in alertdesk.
TRACKED = frozenset(
    {
        "opened",
        "severity_raised",
        "severity_lowered",
        "acknowledged",
        "unacknowledged",
        "assigned",
        "comment",
        "escalated",
        "sla_breached",
        "resolved",
        "closed",
        "reopened",
    }
)


def _tracker_events(ticket: TicketRow, now: datetime) -> list[dict[str, Any]]:
    """Outbox rows (channel `tracker:<name>`) for what the ticket's tracker record follows, in history order.

    A change that came from the tracker itself (`origin`) is not sent back to it: no ping-pong.
    """
    if ticket.tracker is None or ticket.origin == ticket.tracker:
        return []
    entries = [h for h in ticket.history if h.kind in TRACKED]
    if not entries:
        return []
    number = ticket_number(ticket.id or 0)
    view = json.loads(TicketView.from_columns(ticket.values()).model_dump_json())
    return [
        {
            "ticket_id": ticket.id,
            "event": h.kind,
            "level": ticket.escalation_level,
            "channel": f"tracker:{ticket.tracker}",
            "idempotency_key": f"{number}:{h.kind}:{uuid.uuid4().hex}",  # each entry is its own event
            "payload": json.dumps(
                {"ticket": view, "entry": {"kind": h.kind, "actor": h.actor, "detail": h.detail}}, ensure_ascii=False
            ),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for h in entries
    ]


def _insert_new(conn: Connection, new: Sequence[TicketRow]) -> None:
    """Insert new tickets in creation order; one that follows another new ticket waits for that one's id."""
    pending = list(new)
    while pending:
        ready = [x for x in pending if x.previous is None or x.previous.id is not None]
        rows = [{k: v for k, v in x.values().items() if k != "id"} for x in ready]
        result = conn.execute(_INSERT_TICKETS, rows)
        for ticket, row in zip(ready, result.all(), strict=True):
            ticket.id = row.id
            ticket.previous = None
        pending = [x for x in pending if x.id is None]
