"""`alertdesk run` and `alertdesk store` on a PostgreSQL database whose disk fills up, then gets space back.

A real tmpfs (the test runs as root), owned by postgres, is the location of a tablespace, and a fresh database
lives in it: its tables and indexes grow there, while the cluster's WAL stays in its main directory. A filler
file takes the rest of the tmpfs, so the next table or index extension fails with 53100 disk_full.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from dedup.rabbitmq.topology import Stream
from normalizers.schema import Source, alert_id_for
from tests.cluster import Pipeline, eventually, metric, queue_messages, raw_dsn, readyz, start_all
from tests.process import AlertdeskProcess
from tests.test_full_disk import fill
from ticketstore import db

pytestmark = pytest.mark.slow

NAGIOS_TICKETS = 5  # alerts go round this many hosts: a ticket counts several of them


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(raw_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 24 MB tmpfs that postgres owns; not under tmp_path, whose parents postgres may not enter."""
    disk = Path(tempfile.mkdtemp(prefix="alertdesk-pgdisk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(disk)], check=True)
    try:
        shutil.chown(disk, "postgres", "postgres")
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
        disk.rmdir()


@pytest.fixture
async def small_database(small_disk: Path) -> AsyncIterator[tuple[str, Path]]:
    """A fresh database (its URL) in a tablespace on `small_disk` (its mount point), dropped afterwards."""
    name = f"alertdesk_full_{uuid.uuid4().hex[:8]}"
    try:
        await admin(f"CREATE TABLESPACE {name} LOCATION '{small_disk}'")
        # FILE_COPY writes the template's files out whole, as an aged database's are; PostgreSQL 15's default
        # (WAL_LOG) leaves them sparse, and on the full disk the checkpointer then fails to fill the holes
        await admin(f"CREATE DATABASE {name} TABLESPACE {name} STRATEGY FILE_COPY")
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", small_disk
    finally:
        with contextlib.suppress(asyncpg.PostgresError):
            await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        with contextlib.suppress(asyncpg.PostgresError):
            await admin(f"DROP TABLESPACE IF EXISTS {name}")


def form(n: int) -> dict[str, str]:
    return {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": f"host-{n % NAGIOS_TICKETS}",
        "SERVICEDESC": "DISK /",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "DISK CRITICAL - " + secrets.token_hex(1000),  # room in the history; does not compress
        "SERVICEPROBLEMID": "77",
        "LASTSERVICEPROBLEMID": "0",
        "pd_nagios_object": "service",
    }


async def post(session: aiohttp.ClientSession, base: str, key: str, n: int) -> tuple[int, float, str | None]:
    started = time.monotonic()
    async with session.post(f"{base}/webhooks/nagios", data=form(n), headers={"Idempotency-Key": key}) as resp:
        await resp.read()
        return resp.status, time.monotonic() - started, resp.headers.get("Retry-After")


async def status_of(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/readyz") as resp:
        return resp.status


async def query(url: str, sql: str, schema: str = "public") -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.libpq_url(url), server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def applied(url: str, schema: str = "public") -> tuple[set[str], int, int]:
    """The processed alert ids, the sum of the tickets' occurrences, the dead letters kept by the store."""
    ids = {r["alert_id"] for r in await query(url, "SELECT alert_id FROM processed_alerts", schema)}
    occurrences = (await query(url, "SELECT coalesce(sum(occurrences), 0) AS n FROM tickets", schema))[0]["n"]
    dead = (await query(url, "SELECT count(*) AS n FROM dead_letters", schema))[0]["n"]
    return ids, int(occurrences), int(dead)


def ids(keys: list[str]) -> set[str]:
    return {alert_id_for(Source.NAGIOS, None, k) for k in keys}


def error_lines(proc: AlertdeskProcess) -> list[str]:
    return [line for line in proc.output().splitlines() if "ERROR" in line]


async def test_embedded_on_a_full_tablespace_refuses_at_once_logs_once_and_heals(
    tmp_path: Path, small_database: tuple[str, Path]
) -> None:
    url, disk = small_database
    proc = AlertdeskProcess(tmp_path, {"ALERTDESK_DATABASE_URL": url, "ALERTDESK_LOG_LEVEL": "INFO"}).start()
    accepted, refused = [], []
    try:
        async with aiohttp.ClientSession() as session:
            assert (await post(session, proc.url, "before", 0))[0] == 202
            accepted.append("before")
            filler = fill(disk)

            for n in range(500):  # free room in the tables' last pages goes first; then an extension fails
                status, _, _ = await post(session, proc.url, f"full-{n}", n)
                (accepted if status == 202 else refused).append(f"full-{n}")
                if status == 503:
                    break
            assert refused, "the disk never filled"
            answers = [await post(session, proc.url, f"during-{n}", n) for n in range(20)]
            refused += [f"during-{n}" for n in range(20)]
            ready_during = await status_of(session, proc.url)
            writable_during = metric(proc, "alertdesk_store_writable")
            assert proc.proc is not None and proc.proc.poll() is None, "the server died"

            filler.unlink()
            for _ in range(75):  # a sender retrying every 0.2 s for 15 s, as its 503s say
                if (status := (await post(session, proc.url, "after", 0))[0]) == 202:
                    break
                await asyncio.sleep(0.2)
            accepted.append("after")
            ready_after = await status_of(session, proc.url)
            writable_after = metric(proc, "alertdesk_store_writable")
    finally:
        proc.stop(signal.SIGTERM)

    assert all(s == 503 and retry_after for s, _, retry_after in answers)
    assert max(seconds for _, seconds, _ in answers) < 1.0, "a 503 waited for the timeout"
    assert (ready_during, writable_during) == (503, 0)
    assert status == 202, "no alert accepted after space returned"
    assert (ready_after, writable_after) == (200, 1)
    errors = error_lines(proc)
    assert len(errors) == 1 and "No space left on device (SQLSTATE 53100)" in errors[0], errors
    processed, occurrences, dead = await applied(url)
    assert processed == ids(accepted) and occurrences == len(accepted), "a 202 not applied, or applied twice"
    assert not ids(refused) & processed, "a refused alert was applied"
    assert dead == 0


async def test_distributed_store_on_a_full_tablespace_keeps_its_messages_logs_once_and_heals(
    tmp_path: Path, small_database: tuple[str, Path]
) -> None:
    url, disk = small_database
    pipeline = Pipeline(tmp_path, database_url=url)
    await db.create_schema(url, pipeline.schema)
    pipeline.ingest = pipeline.process("ingest")
    pipeline.dedup = [pipeline.process("dedup")]
    pipeline.store = [store := pipeline.process("store")]
    accepted: list[str] = []

    async def stuck() -> bool:
        return metric(store, "alertdesk_store_writable") == 0

    async def healed() -> bool:
        waiting = queue_messages(pipeline.prefix, Stream.ALERTS) + queue_messages(pipeline.prefix, Stream.TICKETS)
        return waiting == 0 and metric(store, "alertdesk_store_writable") == 1

    try:
        await start_all([pipeline.ingest, *pipeline.dedup, store])
        async with aiohttp.ClientSession() as session:
            assert (await post(session, pipeline.url, "before", 0))[0] == 202
            accepted.append("before")
            await eventually(healed, 30, pipeline.logs)
            filler = fill(disk)

            for n in range(500):  # 202: RabbitMQ has it; the store stops when an extension fails
                assert (await post(session, pipeline.url, f"full-{n}", n))[0] == 202
                accepted.append(f"full-{n}")
                if n % 10 == 9 and await stuck():
                    break
            await eventually(stuck, 30, lambda: f"the disk never filled\n{pipeline.logs()}")
            started, errors_before = time.monotonic(), metric(store, "alertdesk_store_write_errors_total")
            for n in range(20):
                assert (await post(session, pipeline.url, f"during-{n}", n))[0] == 202
                accepted.append(f"during-{n}")
            await asyncio.sleep(6)  # a few probes
            retried = metric(store, "alertdesk_store_write_errors_total") - errors_before
            elapsed = time.monotonic() - started
            ready_during = readyz(store)
            kept = queue_messages(pipeline.prefix, Stream.TICKETS)
            assert store.proc is not None and store.proc.poll() is None, "the store worker died"

            filler.unlink()
            await eventually(healed, 60, lambda: f"did not heal\n{pipeline.logs()}")
            ready_after = readyz(store)
            dead_lettered = metric(store, "alertdesk_broker_dead_lettered_total")
    finally:
        await pipeline.close()

    assert ready_during == 503
    assert kept > 0, "the store's messages left RabbitMQ while it could not write"
    assert 2 <= retried <= elapsed / 2 + 2, f"{retried} tries in {elapsed:.1f}s"  # calm: one per probe interval
    assert ready_after == 200
    errors = error_lines(store)
    assert len(errors) == 1 and "ticket commands wait in RabbitMQ" in errors[0], errors
    assert "No space left on device (SQLSTATE 53100)" in errors[0]
    assert "the store writes again" in store.output()
    assert "applying ticket commands failed" not in store.output(), "a warning per retry"
    processed, occurrences, dead = await applied(url, pipeline.schema)
    assert processed == ids(accepted) and occurrences == len(accepted), "a 202 lost, or applied twice"
    assert (dead, dead_lettered) == (0, 0), "an alert was dead-lettered for a full disk"
