"""Shared fixtures: a fresh database per test, on SQLite and on the machine's real PostgreSQL.

PostgreSQL isolation: each test gets its own schema (dropped afterwards), so tests never see each other.
`ALERTDESK_TEST_DATABASE_URL` points at the server (default: the local one, user postgres, trust auth).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ticketstore.db import Engines, create_engines, create_schema, drop_schema
from ticketstore.migrate import upgrade

PG_URL = os.environ.get("ALERTDESK_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("ALERTDESK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Clock:
    """An injected clock the test moves by hand; nothing sleeps."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 3, 14, 3, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """(url, schema) of an empty database; parametrized so store tests run on both."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'alertdesk.db'}", None
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    await create_schema(PG_URL, schema)
    try:
        yield PG_URL, schema
    finally:
        await drop_schema(PG_URL, schema)


@pytest.fixture
async def engines(database: tuple[str, str | None]) -> AsyncIterator[Engines]:
    url, schema = database
    engines = create_engines(url, schema=schema)
    await upgrade(engines.write)
    yield engines
    await engines.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a test that did not run: fail the session rather than report it as passing."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"FAILED: {skipped} test(s) skipped; every test must run (see .ci/run)", red=True)
