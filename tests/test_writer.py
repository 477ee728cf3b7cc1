"""The SQLite store writer process on its own: batches in, results out, and what happens when the child fails."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alertdesk.writer import StoreProcess
from dedup.fold import fold
from normalizers.schema import Kind, Unavailable
from tests.conftest import Clock
from tests.process import gone
from tests.test_lifecycle import nagios
from ticketstore.db import create_engines
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "alertdesk.db"
    engines = create_engines(f"sqlite+aiosqlite:///{path}")
    await upgrade(engines.write)
    await engines.dispose()
    return path


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def writer(database: Path, registry: CollectorRegistry) -> AsyncIterator[StoreProcess]:
    process = StoreProcess(f"sqlite+aiosqlite:///{database}", Policy(), registry, reply_timeout=3)
    await process.start()
    yield process
    await process.stop()


def occurrences(database: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT status, occurrences FROM tickets ORDER BY id"))


def restarts(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("alertdesk_store_writer_restarts_total")


def child_pid(writer: StoreProcess) -> int:
    assert writer._child is not None
    return writer._child.pid


async def test_a_batch_is_committed_before_its_results_come_back(
    writer: StoreProcess, database: Path, clock: Clock
) -> None:
    [first] = await writer.apply_batch(fold([nagios(clock, Kind.PROBLEM)]))
    [repeats] = await writer.apply_batch(fold([nagios(clock, Kind.PROBLEM), nagios(clock, Kind.PROBLEM)]))

    assert first.opened and first.ticket_id is not None
    assert (repeats.ticket_id, repeats.new_alerts, repeats.opened) == (first.ticket_id, 2, False)
    assert occurrences(database) == [("open", 3)]


async def test_a_stuck_writer_is_replaced_and_the_batch_can_be_retried(
    writer: StoreProcess, database: Path, clock: Clock, registry: CollectorRegistry
) -> None:
    await writer.apply_batch(fold([nagios(clock, Kind.PROBLEM)]))
    stuck = child_pid(writer)
    os.kill(stuck, signal.SIGSTOP)
    batch = fold([nagios(clock, Kind.PROBLEM)])

    with pytest.raises(Unavailable, match="stuck"):
        await writer.apply_batch(batch)
    assert gone(stuck)
    await writer.apply_batch(batch)  # what the embedded pipeline does with an Unavailable: retry

    assert child_pid(writer) != stuck
    assert restarts(registry) == 1
    assert occurrences(database) == [("open", 2)]


async def test_a_writer_killed_between_batches_is_replaced(
    writer: StoreProcess, database: Path, clock: Clock, registry: CollectorRegistry
) -> None:
    assert restarts(registry) == 0
    await writer.apply_batch(fold([nagios(clock, Kind.PROBLEM)]))
    killed = child_pid(writer)
    os.kill(killed, signal.SIGKILL)
    assert gone(killed)
    batch = fold([nagios(clock, Kind.PROBLEM)])

    try:
        await writer.apply_batch(batch)
    except Unavailable:  # the loss noticed on this batch rather than before it: the retry goes to a new child
        await writer.apply_batch(batch)

    assert child_pid(writer) != killed
    assert restarts(registry) == 1
    assert occurrences(database) == [("open", 2)]


async def test_stop_lets_the_writer_exit(database: Path, clock: Clock) -> None:
    writer = StoreProcess(f"sqlite+aiosqlite:///{database}", Policy(), CollectorRegistry())
    await writer.start()
    await writer.apply_batch(fold([nagios(clock, Kind.PROBLEM)]))
    pid = child_pid(writer)

    await writer.stop()

    assert gone(pid)
    assert occurrences(database) == [("open", 1)]
