"""Schema versioning: `alertdesk run` and `alertdesk store` upgrade the database at start.

A database migrated by a newer alertdesk is refused with a clear message rather than written with old rules.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from normalizers.schema import AlertdeskError

logger = logging.getLogger(__name__)

_SCRIPTS = Path(__file__).parent / "migrations"


class SchemaTooNew(AlertdeskError):
    """The database was migrated by a newer alertdesk."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def knows(revision: str) -> bool:
    """Whether this code has schema `revision` (a backup, a database): an unknown one comes from a newer alertdesk."""
    return _known(ScriptDirectory.from_config(_config()), revision)


_LOCK = 0x616C_6572_7464_736B  # "alertdsk": the PostgreSQL advisory lock key of schema upgrades


async def upgrade(engine: AsyncEngine) -> str:
    """Bring the schema to this code's head; return the revision. Raises `SchemaTooNew`.

    On PostgreSQL the upgrade holds an advisory lock, so store workers started together migrate one at a time.
    """
    async with engine.connect() as conn:
        return await conn.run_sync(_upgrade_in_transaction)


def _upgrade_in_transaction(connection: Connection) -> str:
    """One transaction; on SQLite with foreign keys off meanwhile, checked before the commit.

    SQLite alters a table by copying it and dropping the old one (alembic's batch mode). With foreign keys on,
    dropping `tickets` fails as soon as a history row points at a ticket, so a filled database could not be
    upgraded. The pragma only takes effect outside a transaction, hence before `begin`.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _foreign_keys(connection, "OFF")
    try:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            revision = _upgrade(connection)
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise RuntimeError(f"the schema upgrade left rows pointing nowhere: {broken[:5]}")
        return revision
    finally:
        if sqlite:
            _foreign_keys(connection, "ON")


def _foreign_keys(connection: Connection, state: str) -> None:
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys={state}")
    finally:
        cursor.close()


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    """Whether this code has `revision` (alembic raises rather than answer no for a revision it never saw)."""
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def _upgrade(connection: Any) -> str:
    config = _config()
    scripts = ScriptDirectory.from_config(config)
    newest = scripts.get_current_head()
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None and not _known(scripts, current):
        raise SchemaTooNew(
            f"the database is at schema revision {current}, which this alertdesk does not know "
            f"(its newest is {newest}): it was upgraded by a newer alertdesk; run that version or restore a backup"
        )
    config.attributes["connection"] = connection
    if current != newest:
        logger.info("upgrading the database schema from %s to %s", current or "empty", newest)
    command.upgrade(config, "head")
    assert newest is not None
    return newest
