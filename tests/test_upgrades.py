"""Every earlier schema revision, filled with data, upgrades to the newest with the data intact and the store working.

The revisions come from the migrations directory, so a new revision is covered as soon as it is added. The data is
written through that revision's own schema (reflected from the database), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, select, text

from dedup import fold
from normalizers.schema import Kind
from tests.conftest import Clock
from tests.test_lifecycle import SWAP, WEB_DISK, nagios
from ticketstore import migrate
from ticketstore.api.queries import TicketQueries
from ticketstore.db import create_engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.migrate import head, upgrade
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

MIGRATIONS = Path(migrate.__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


EARLIER = [r.revision for r in reversed(list(ScriptDirectory.from_config(_config()).walk_revisions()))][:-1]

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OPEN, RESOLVED = 1, 2
RESOLVED_KEY = "zabbix:db-01/High CPU utilization"

# A realistic store of the oldest release, column by column; a revision stores the columns it has.
ROWS: dict[str, list[dict[str, Any]]] = {
    "tickets": [
        {
            "id": OPEN,
            "dedup_key": WEB_DISK,
            "source": "nagios",
            "title": "DISK / on web-01 is CRITICAL",
            "description": "DISK CRITICAL - free space: / 1843 MB (4.6% inode=71%):",
            "host": "web-01",
            "service": "DISK /",
            "address": "10.0.4.21",
            "severity": "critical",
            "peak_severity": "critical",
            "priority": "P1",
            "status": "open",
            "suppressed": False,
            "flapping": False,
            "occurrences": 3,
            "first_seen": AT,
            "last_seen": AT + timedelta(minutes=10),
            "escalation_level": 1,
            "respond_by": AT + timedelta(minutes=15),
            "resolve_by": AT + timedelta(hours=4),
            "response_breached": False,
            "resolution_breached": False,
            "paused_seconds": 0.0,
            "episode_id": "48213",
            "last_state_ok": False,
            "last_state_change": AT,
            "source_refs": {"problem_id": "48213"},
            "tags": {"team": "web"},
            "next_escalation_at": AT + timedelta(minutes=15),
        },
        {
            "id": RESOLVED,
            "dedup_key": RESOLVED_KEY,
            "source": "zabbix",
            "title": "High CPU utilization",
            "description": "CPU over 90% for 5m",
            "host": "db-01",
            "service": "High CPU utilization",
            "severity": "warning",
            "peak_severity": "major",
            "priority": "P2",
            "status": "resolved",
            "suppressed": False,
            "flapping": False,
            "occurrences": 2,
            "first_seen": AT - timedelta(days=3),
            "last_seen": AT - timedelta(days=3, hours=-1),
            "acknowledged_by": "alice",
            "acknowledged_at": AT - timedelta(days=3, minutes=-5),
            "resolved_at": AT - timedelta(days=2),
            "escalation_level": 0,
            "response_breached": False,
            "resolution_breached": True,
            "paused_seconds": 120.0,
            "episode_id": "9001",
            "last_state_ok": True,
            "source_refs": {"eventid": "9001"},
            "tags": {},
        },
    ],
    "ticket_history": [
        {"ticket_id": OPEN, "at": AT, "kind": "opened", "detail": "opened from nagios"},
        {"ticket_id": OPEN, "at": AT + timedelta(minutes=10), "kind": "occurrence", "detail": "3 occurrences"},
        {"ticket_id": RESOLVED, "at": AT - timedelta(days=3), "kind": "opened", "detail": "opened from zabbix"},
        {"ticket_id": RESOLVED, "at": AT - timedelta(days=3), "kind": "acknowledged", "actor": "alice", "detail": ""},
        {"ticket_id": RESOLVED, "at": AT - timedelta(days=2), "kind": "resolved", "detail": "recovery"},
    ],
    "ticket_episodes": [
        {"dedup_key": WEB_DISK, "episode_id": "48213", "ticket_id": OPEN},
        {"dedup_key": RESOLVED_KEY, "episode_id": "9001", "ticket_id": RESOLVED},
    ],
    "processed_alerts": [
        {"alert_id": str(uuid.UUID(int=n)), "ticket_id": OPEN, "kind": "problem", "processed_at": AT} for n in range(3)
    ],
    "dead_letters": [{"alert_id": str(uuid.UUID(int=99)), "at": AT, "reason": "invalid", "payload": "{}"}],
    "notifications": [
        {
            "ticket_id": OPEN,
            "event": "opened",
            "level": 0,
            "channel": "ops-hook",
            "idempotency_key": "INC-000001:opened:opened",
            "payload": '{"event": "opened"}',
            "status": "sent",
            "attempts": 1,
            "created_at": AT,
            "next_attempt_at": AT,
            "sent_at": AT,
        }
    ],
}


def _fill(conn: Connection, revision: str) -> dict[str, list[dict[str, Any]]]:
    """Insert `ROWS` through the tables as they are at `revision`; return what was stored, table by table."""
    schema = MetaData()
    schema.reflect(conn)
    stored = {}
    for name, rows in ROWS.items():
        if name not in schema.tables:
            continue
        table = schema.tables[name]
        required = {c.name for c in table.columns if not c.nullable and c.server_default is None}
        required -= {
            c.name
            for c in table.primary_key.columns
            if c.autoincrement is not False and len(table.primary_key.columns) == 1
        }
        kept = [{k: v for k, v in row.items() if k in table.columns} for row in rows]
        for row in kept:
            assert required <= row.keys(), f"revision {revision}: no test value for {name}.{required - row.keys()}"
        for row in kept:  # one by one: the rows set different columns
            conn.execute(table.insert().values(row))
        stored[name] = kept
    if conn.dialect.name == "postgresql":  # as after real inserts: the next ticket id follows the ones stored
        conn.execute(text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))"))
    return stored


def _read(conn: Connection, stored: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    schema = MetaData()
    schema.reflect(conn)
    found = {}
    for name, rows in stored.items():
        table = schema.tables[name]
        columns = [table.c[k] for k in dict.fromkeys(k for row in rows for k in row)]
        found[name] = [dict(r._mapping) for r in conn.execute(select(*columns).order_by(*table.primary_key.columns))]
    return found


def _upgrade_to(conn: Connection, revision: str) -> None:
    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def _same(value: Any, expected: Any) -> bool:
    if isinstance(expected, datetime) and isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC) == expected
    if isinstance(expected, bool):
        return bool(value) == expected
    return bool(value == expected)


@pytest.mark.parametrize("revision", EARLIER)
async def test_a_filled_database_upgrades_to_the_newest_revision_intact(
    revision: str, database: tuple[str, str | None], clock: Clock
) -> None:
    url, schema = database
    engines = create_engines(url, schema=schema)
    try:
        async with engines.write.begin() as conn:
            await conn.run_sync(_upgrade_to, revision)
            stored = await conn.run_sync(_fill, revision)
        assert {"tickets", "ticket_history", "processed_alerts"} <= stored.keys()

        assert await upgrade(engines.write) == head()

        async with engines.read.connect() as conn:
            found = await conn.run_sync(_read, stored)
        for name, rows in stored.items():
            assert len(found[name]) == len(rows), name
            for got, expected in zip(found[name], rows, strict=True):
                wrong = {k: (got[k], v) for k, v in expected.items() if not _same(got[k], v)}
                assert not wrong, f"{name}: {wrong}"

        # the store works on the upgraded data: a repeat lands on the open ticket, a new key opens one
        clock.current = AT + timedelta(minutes=20)
        store = TicketStore(engines, Lifecycle(Policy()), now=clock)
        [repeat] = await store.apply_batch(fold([nagios(clock, Kind.PROBLEM)]))
        [new] = await store.apply_batch(fold([nagios(clock, Kind.PROBLEM, key=SWAP)]))
        queries = TicketQueries(engines)
        opened = await queries.get(OPEN)
        resolved = await queries.get(RESOLVED)
        page = await queries.list()
    finally:
        await engines.dispose()

    assert (repeat.ticket_id, repeat.opened) == (OPEN, False)
    assert new.opened and new.ticket_id not in (OPEN, RESOLVED)
    assert opened is not None and opened.occurrences == 4 and opened.status == "open"
    assert opened.history is not None and [h.kind for h in opened.history][:2] == ["opened", "occurrence"]
    assert resolved is not None and resolved.status == "resolved" and resolved.acknowledged_by == "alice"
    assert {ticket.id for ticket in page.tickets} == {OPEN, RESOLVED, new.ticket_id}
