"""Database engines: SQLite (embedded default) and PostgreSQL, with the settings a 202 relies on.

SQLite runs in WAL mode with `synchronous=FULL` (a committed alert survives a power cut), and every write
transaction starts with `BEGIN IMMEDIATE`, so the writer holds the lock from its first read and never has to
upgrade it half-way. Readers use their own engine and never block the writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


@dataclass(frozen=True)
class Engines:
    """`write` serializes writers (one connection on SQLite); `read` serves queries."""

    write: AsyncEngine
    read: AsyncEngine

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    async def dispose(self) -> None:
        await self.write.dispose()
        if self.read is not self.write:
            await self.read.dispose()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


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
    _sqlite_pragmas(write, begin="BEGIN IMMEDIATE")
    _sqlite_pragmas(read, begin="BEGIN")
    return Engines(write=write, read=read)


def _sqlite_pragmas(engine: AsyncEngine, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)
