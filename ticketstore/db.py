"""Database engines: SQLite (embedded default) and PostgreSQL, with the settings a 202 relies on.

SQLite runs in WAL mode with `synchronous=FULL` (a committed alert survives a power cut), and every write
transaction starts with `BEGIN IMMEDIATE`, so the writer holds the lock from its first read and never has to
upgrade it half-way. Readers use their own engine and never block the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from normalizers.schema import Unavailable

T = TypeVar("T")


class NotWritable(Unavailable):
    """The database cannot write its files (disk full, I/O error): retrying at once will not help, later may."""


# SQLite's result codes for a write its file system refused (sqlite3 errors name them since Python 3.11)
_NOT_WRITABLE = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")
# PostgreSQL's SQLSTATEs for the same: 53100 disk_full (a table, index or temporary file could not grow) and
# 58030 io_error. The rest of class 53 (out of memory, too many connections) is the server short of something
# that frees itself, not its disk: retried as an outage, never refusing webhooks as "cannot write".
_PG_NOT_WRITABLE = ("53100", "58030")
_PG_SHORT_OF_RESOURCES = "53"


@contextmanager
def outage_is_unavailable() -> Iterator[None]:
    """Database errors that mean "cannot reach it now" become `Unavailable` (retry, 503); others stay as they are."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        sqlstate = _sqlstate(exc)
        if sqlstate in _PG_NOT_WRITABLE or str(getattr(exc.orig, "sqlite_errorname", "")).startswith(_NOT_WRITABLE):
            # asyncpg's own error says it without the wrapping of SQLAlchemy's adapter; its HINT goes (one line)
            reason = str(getattr(exc.orig, "__cause__", None) or exc.orig).partition("\n")[0]
            code = f" (SQLSTATE {sqlstate})" if sqlstate else ""
            raise NotWritable(f"the database cannot write: {reason}{code}") from exc
        if isinstance(exc, OperationalError) or exc.connection_invalidated or sqlstate[:2] == _PG_SHORT_OF_RESOURCES:
            raise Unavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc
        raise
    except (OSError, ConnectionError) as exc:
        raise Unavailable(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc


def _sqlstate(exc: DBAPIError) -> str:
    """PostgreSQL's error code (asyncpg's `sqlstate`, psycopg's `pgcode`); "" for SQLite or none."""
    return str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")


@dataclass(frozen=True)
class Engines:
    """`write` serializes writers (one connection on SQLite); `read` serves queries.

    On SQLite the store's hot transactions use `sync_write` (plain sqlite3, run in a thread): aiosqlite costs a
    thread hop per statement, this one hop per transaction.
    """

    write: AsyncEngine
    read: AsyncEngine
    sync_write: Engine | None = None
    inline: bool = False  # run `sync_write` transactions on the caller's thread: its loop has nothing else to do

    async def transact(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one write transaction.

        SQLite: in a worker thread with a plain sqlite3 connection, one thread hop per transaction (aiosqlite
        costs one per statement); the event loop keeps serving requests while SQLite works and syncs.
        PostgreSQL: on the async connection (asyncpg), through SQLAlchemy's greenlet bridge.
        """
        sync_write = self.sync_write
        if sync_write is not None:

            def run() -> T:
                with sync_write.begin() as conn:
                    return fn(conn)

            return run() if self.inline else await asyncio.to_thread(run)
        async with self.write.begin() as aconn:
            return await aconn.run_sync(fn)

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    async def dispose(self) -> None:
        if self.sync_write is not None:
            self.sync_write.dispose()
        await self.write.dispose()
        if self.read is not self.write:
            await self.read.dispose()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite `url`; None for another database or an in-memory one."""
    database = make_url(url).database if is_sqlite(url) else None
    return None if not database or database == ":memory:" else database


def create_engines(url: str, *, pool_size: int = 5, schema: str | None = None) -> Engines:
    """Engines for `url`; `schema` (PostgreSQL) puts every table in that schema, e.g. one per test."""
    if not is_sqlite(url):
        connect_args = {"server_settings": {"search_path": schema}} if schema else {}
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
        )
        return Engines(write=engine, read=engine)
    write = create_async_engine(url, pool_size=1, max_overflow=1)
    read = create_async_engine(url, poolclass=NullPool)
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    sync_write = create_engine(sync_url, pool_size=2, max_overflow=2, connect_args={"check_same_thread": False})
    _sqlite_pragmas(write.sync_engine, begin="BEGIN IMMEDIATE")
    _sqlite_pragmas(read.sync_engine, begin="BEGIN")
    _sqlite_pragmas(sync_write, begin="BEGIN IMMEDIATE")
    return Engines(write=write, read=read, sync_write=sync_write)


def _sqlite_pragmas(engine: Engine, *, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq and asyncpg spell it (no `+driver`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_schema(url: str, schema: str) -> None:
    """An empty PostgreSQL schema of its own, for one test or one benchmark run."""
    await _execute(url, f'CREATE SCHEMA "{schema}"')


async def drop_schema(url: str, schema: str) -> None:
    await _execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _execute(url: str, sql: str) -> None:
    import asyncpg  # PostgreSQL only: embedded mode never loads it

    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
