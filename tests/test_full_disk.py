"""`alertdesk run` with its SQLite database on a file system that fills up, then gets space back.

A real 4 MB tmpfs (the test runs as root) holds the database; a filler file takes the rest of its space.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from normalizers.schema import Source, alert_id_for
from tests.cluster import metric
from tests.process import AlertdeskProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with a filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def form(host: str) -> dict[str, str]:
    return {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": host,
        "SERVICEDESC": "DISK /",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "DISK CRITICAL - " + "x" * 2000,  # each alert takes room in the history
        "SERVICEPROBLEMID": "77",
        "LASTSERVICEPROBLEMID": "0",
        "pd_nagios_object": "service",
    }


async def post(session: aiohttp.ClientSession, base: str, key: str) -> tuple[int, float, str | None]:
    started = time.monotonic()
    async with session.post(f"{base}/webhooks/nagios", data=form(key), headers={"Idempotency-Key": key}) as resp:
        await resp.read()
        return resp.status, time.monotonic() - started, resp.headers.get("Retry-After")


async def readyz(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/readyz") as resp:
        return resp.status


async def test_a_full_disk_is_logged_once_refused_at_once_and_heals_by_itself(tmp_path: Path, small_disk: Path) -> None:
    database = small_disk / "alertdesk.db"
    env = {"ALERTDESK_DATABASE_URL": f"sqlite+aiosqlite:///{database}", "ALERTDESK_LOG_LEVEL": "INFO"}
    proc = AlertdeskProcess(tmp_path, env).start()
    accepted, refused = [], []
    try:
        async with aiohttp.ClientSession() as session:
            assert (await post(session, proc.url, "before"))[0] == 202
            accepted.append("before")
            filler = fill(small_disk)

            for n in range(500):  # the database's free pages go first; then a commit fails
                status, _, _ = await post(session, proc.url, f"full-{n}")
                (accepted if status == 202 else refused).append(f"full-{n}")
                if status == 503:
                    break
            assert refused, "the disk never filled"
            answers = [await post(session, proc.url, f"during-{n}") for n in range(20)]
            refused += [f"during-{n}" for n in range(20)]
            ready_during = await readyz(session, proc.url)
            writable_during = metric(proc, "alertdesk_store_writable")
            assert proc.proc is not None and proc.proc.poll() is None, "the server died"

            filler.unlink()
            for _ in range(75):  # a sender retrying every 0.2 s for 15 s, as its 503s say
                if (status := (await post(session, proc.url, "after"))[0]) == 202:
                    break
                await asyncio.sleep(0.2)
            accepted.append("after")
            ready_after = await readyz(session, proc.url)
            writable_after = metric(proc, "alertdesk_store_writable")
    finally:
        proc.stop(signal.SIGTERM)

    assert all(s == 503 and retry_after for s, _, retry_after in answers)
    assert max(seconds for _, seconds, _ in answers) < 1.0, "a 503 waited for the timeout"
    assert (ready_during, writable_during) == (503, 0)
    assert status == 202, "no alert accepted after space returned"
    assert (ready_after, writable_after) == (200, 1)
    errors = [line for line in proc.output().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "database or disk is full" in errors[0], errors
    refusals = [line for line in proc.output().splitlines() if "refused nagios webhook with 503" in line]
    assert len(refusals) == 1 and "database or disk is full" in refusals[0], refusals  # not one per request
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        processed = {row[0] for row in db.execute("SELECT alert_id FROM processed_alerts")}
    assert {alert_id_for(Source.NAGIOS, None, k) for k in accepted} <= processed
    assert not {alert_id_for(Source.NAGIOS, None, k) for k in refused} & processed, "a refused alert was applied"
