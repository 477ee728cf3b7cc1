"""`alertdesk backup FILE` and `alertdesk restore FILE`: the SQLite database of `alertdesk run`, copied safely.

Copying the file under a running server misses what its WAL holds, or tears a page; SQLite's online backup API
copies the snapshot of one read transaction while `alertdesk run` goes on writing (in WAL mode a reader does not
block the writer). A restore checks the backup first (intact, alertdesk's, of a schema revision this code
knows), then copies it in under the database's run lock, so no server can start on a half-restored file and a
running one is never written under. PostgreSQL has its own tools: pg_dump -Fc and pg_restore (README).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alertdesk.dblock import AlreadyRunning, lock_database
from normalizers.schema import AlertdeskError
from ticketstore import migrate
from ticketstore.db import sqlite_file

_BUSY_TIMEOUT_S = 30.0  # the server's write transactions are short; a backup waits for a lock this long at most


class BackupError(AlertdeskError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Contents:
    """What a database holds, as the operator checks it after a backup or restore."""

    revision: str
    tickets: int
    history: int

    def __str__(self) -> str:
        return f"{self.tickets} tickets, {self.history} history rows, schema revision {self.revision}"


def backup(database_url: str, target: Path) -> str:
    """Copy the database to `target` (replaced only once the copy is complete and checked)."""
    database = _database(database_url)
    if not database.is_file():
        raise BackupError(f"no database at {database}: check ALERTDESK_DATABASE_URL / --database-url")
    partial = target.with_name(f"{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with _open(database, "rw") as source, _connect(partial, shown=target) as copy:
            source.backup(copy)  # all pages in one step: one read transaction, hence one consistent snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            contents = _contents(copy, database)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return f"backed up {database} to {target}: {contents}"


def restore(source: Path, database_url: str) -> str:
    """Put the backup `source` in place of the database; refused while a server runs on it."""
    database = _database(database_url)
    with _open(source, "ro") as backup_file:
        contents = _contents(backup_file, source)
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_database(database_url)
    except AlreadyRunning as exc:
        raise BackupError(f"cannot restore: {exc}; stop it first") from None
    assert lock is not None
    try:
        with _open(source, "ro") as backup_file, _connect(database, shown=database) as target:
            backup_file.backup(target)
    finally:
        lock.close()
    upgrade = "" if contents.revision == migrate.head() else f"; `alertdesk run` upgrades it to {migrate.head()}"
    return f"restored {source} to {database}: {contents}{upgrade}"


def _database(url: str) -> Path:
    database = sqlite_file(url)
    if database is None:
        raise BackupError(
            "alertdesk backup and restore work on the SQLite file of `alertdesk run`; for PostgreSQL use "
            "pg_dump -Fc and pg_restore (README, Operations)"
        )
    return Path(database).resolve()


@contextlib.contextmanager
def _open(path: Path, mode: str) -> Iterator[sqlite3.Connection]:
    """An existing database file: never creates one (sqlite3.connect would, empty, for a mistyped path)."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.OperationalError as exc:
        raise BackupError(f"cannot open {path}: {exc}") from None
    try:
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def _connect(path: Path, *, shown: Path) -> Iterator[sqlite3.Connection]:
    """A database to write; errors name `shown`, the file the operator asked for."""
    try:
        connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.OperationalError as exc:
        raise BackupError(f"cannot write {shown}: {exc}") from None
    try:
        yield connection
    finally:
        connection.close()


def _contents(db: sqlite3.Connection, path: Path) -> Contents:
    """Check `db` is an intact alertdesk database this code can run; raise `BackupError` saying why not."""
    try:
        (check,) = db.execute("PRAGMA quick_check").fetchone()
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:  # not SQLite at all, or SQLite without alertdesk's tables
        raise BackupError(f"{path} is not an alertdesk database ({exc})") from None
    if check != "ok":
        raise BackupError(f"{path} is damaged: {check}")
    if row is None:
        raise BackupError(f"{path} is not an alertdesk database (no schema revision)")
    revision = str(row[0])
    if not migrate.knows(revision):
        raise BackupError(
            f"{path} is at schema revision {revision}, which this alertdesk does not know (its newest is "
            f"{migrate.head()}): it comes from a newer alertdesk; restore it with that version"
        )
    (tickets,) = db.execute("SELECT count(*) FROM tickets").fetchone()
    (history,) = db.execute("SELECT count(*) FROM ticket_history").fetchone()
    return Contents(revision, tickets, history)
