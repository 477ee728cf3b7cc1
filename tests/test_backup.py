"""`alertdesk backup` and `alertdesk restore` as an operator runs them: on a live server, then on another machine."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.process import AlertdeskProcess
from ticketstore.db import create_engines
from ticketstore.migrate import upgrade

pytestmark = pytest.mark.slow


def alertdesk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTDESK_")}
    return subprocess.run(
        [sys.executable, "-m", "alertdesk.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'alertdesk.db'}"


def nagios(kind: str, host: str, problem_id: int) -> dict[str, str]:
    return {
        "NOTIFICATIONTYPE": kind,
        "HOSTNAME": host,
        "SERVICEDESC": "DISK /",
        "SERVICESTATE": "CRITICAL" if kind == "PROBLEM" else "OK",
        "SERVICEOUTPUT": "DISK CRITICAL" if kind == "PROBLEM" else "DISK OK",
        "SERVICEPROBLEMID": str(problem_id) if kind == "PROBLEM" else "0",
        "LASTSERVICEPROBLEMID": "0" if kind == "PROBLEM" else str(problem_id),
        "pd_nagios_object": "service",
    }


class Sender:
    """Posts problems (and a recovery for every other one) until stopped; counts what was answered 202."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.accepted = 0
        self.stop = asyncio.Event()
        self._progress = asyncio.Condition()

    async def run(self, worker: int) -> None:
        async with aiohttp.ClientSession() as session:
            n = 0
            while not self.stop.is_set():
                n += 1
                host = f"db-{worker}-{n}"
                kinds = ["PROBLEM", "RECOVERY"] if n % 2 else ["PROBLEM"]
                for kind in kinds:
                    async with session.post(f"{self.base}/webhooks/nagios", data=nagios(kind, host, n)) as resp:
                        assert resp.status == 202, await resp.text()
                async with self._progress:
                    self.accepted += 1
                    self._progress.notify_all()

    async def until(self, accepted: int) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self.accepted >= accepted)


def backup_rows(path: Path) -> tuple[dict[int, tuple[Any, ...]], dict[int, list[tuple[Any, ...]]]]:
    """(ticket id → number fields, ticket id → its history) as the backup file holds them."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tickets = {
            row[0]: row[1:]
            for row in db.execute("SELECT id, dedup_key, status, occurrences, severity FROM tickets ORDER BY id")
        }
        history: dict[int, list[tuple[Any, ...]]] = {ticket: [] for ticket in tickets}
        for ticket, kind, actor, detail in db.execute(
            "SELECT ticket_id, kind, actor, detail FROM ticket_history ORDER BY id"
        ):
            history[ticket].append((kind, actor, detail))
    return tickets, history


@pytest.fixture
def servers() -> Iterator[list[AlertdeskProcess]]:
    started: list[AlertdeskProcess] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


async def test_backup_of_a_busy_server_restores_elsewhere_with_every_ticket_and_history_row(
    tmp_path: Path, servers: list[AlertdeskProcess]
) -> None:
    live, restored = tmp_path / "live", tmp_path / "restored"
    live.mkdir()
    restored.mkdir()
    server = AlertdeskProcess(live, {"ALERTDESK_LOG_LEVEL": "INFO"}).start()
    servers.append(server)
    # A long report holding a read transaction: no checkpoint gets past it, so everything committed from now on
    # stays in the WAL, where a plain copy of the database file would miss it.
    report = sqlite3.connect(live / "alertdesk.db", isolation_level=None)
    report.execute("BEGIN")
    assert report.execute("SELECT count(*) FROM tickets").fetchone() == (0,)

    sender = Sender(server.url)
    senders = [asyncio.create_task(sender.run(worker)) for worker in range(4)]
    await sender.until(50)
    committed_before = sender.accepted  # every 202 is committed: the backup must hold at least these
    done = await asyncio.to_thread(
        alertdesk, "backup", str(tmp_path / "backup.db"), "--database-url", url(live), cwd=tmp_path
    )
    during = sender.accepted - committed_before
    await sender.until(sender.accepted + 10)  # and the server went on taking alerts after it
    sender.stop.set()
    await asyncio.gather(*senders)
    report.close()

    assert done.returncode == 0, done.stderr
    assert during > 0  # the backup really ran while alerts were being written
    tickets, history = backup_rows(tmp_path / "backup.db")
    assert f"backed up {live / 'alertdesk.db'} to {tmp_path / 'backup.db'}: {len(tickets)} tickets" in done.stdout
    assert committed_before <= len(tickets) < sender.accepted
    assert sum(len(rows) for rows in history.values()) > len(tickets)  # opened, and resolved for half of them
    assert not (tmp_path / "backup.db-wal").exists()  # one self-contained file

    done = alertdesk("restore", str(tmp_path / "backup.db"), "--database-url", url(restored), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"restored {tmp_path / 'backup.db'} to {restored / 'alertdesk.db'}: {len(tickets)} tickets" in done.stdout

    again = AlertdeskProcess(restored, {"ALERTDESK_LOG_LEVEL": "INFO"}).start()
    servers.append(again)
    async with aiohttp.ClientSession() as session:
        for ticket, (dedup_key, status, occurrences, severity) in tickets.items():
            async with session.get(f"{again.url}/api/tickets/{ticket}") as resp:
                assert resp.status == 200, ticket
                served = await resp.json()
            assert (served["dedup_key"], served["status"], served["occurrences"], served["severity"]) == (
                dedup_key,
                status,
                occurrences,
                severity,
            )
            assert [(h["kind"], h["actor"], h["detail"]) for h in served["history"]] == history[ticket]

        async with session.post(f"{again.url}/webhooks/nagios", data=nagios("PROBLEM", "after-restore", 1)) as resp:
            assert resp.status == 202
        async with session.get(f"{again.url}/api/tickets", params={"host": "after-restore"}) as resp:
            (new,) = (await resp.json())["tickets"]
    assert new["id"] > max(tickets)  # numbering goes on after the restored tickets, never reusing one

    refused = alertdesk("restore", str(tmp_path / "backup.db"), "--database-url", url(restored), cwd=tmp_path)
    assert refused.returncode == 2
    assert f"cannot restore: another alertdesk is running on {restored / 'alertdesk.db'} (pid {again.proc.pid}" in (
        refused.stderr
    )
    assert "stop it first" in refused.stderr
    with sqlite3.connect(restored / "alertdesk.db") as db:  # untouched: the new ticket is still there
        assert db.execute("SELECT count(*) FROM tickets WHERE host = 'after-restore'").fetchone() == (1,)


@pytest.fixture
def alertdesk_database(tmp_path: Path) -> Path:
    """An empty alertdesk database at this code's schema, as a backup file."""
    path = tmp_path / "made.db"

    async def make() -> None:
        engines = create_engines(f"sqlite+aiosqlite:///{path}")
        await upgrade(engines.write)
        await engines.dispose()

    asyncio.run(make())
    return path


def test_restore_refuses_a_backup_from_a_newer_alertdesk(alertdesk_database: Path, tmp_path: Path) -> None:
    with sqlite3.connect(alertdesk_database) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")

    done = alertdesk("restore", str(alertdesk_database), "--database-url", url(tmp_path / "target"), cwd=tmp_path)

    assert done.returncode == 2
    assert "is at schema revision 0099_from_the_future, which this alertdesk does not know" in done.stderr
    assert not (tmp_path / "target" / "alertdesk.db").exists()


def test_restore_refuses_a_file_that_is_not_an_alertdesk_database(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database at all\n" * 100)
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE t (x)")

    for name in ("notes.txt", "other.db"):
        done = alertdesk("restore", str(tmp_path / name), "--database-url", url(tmp_path / "target"), cwd=tmp_path)
        assert done.returncode == 2, name
        assert f"{tmp_path / name} is not an alertdesk database" in done.stderr
    missing = alertdesk("restore", str(tmp_path / "nope.db"), "--database-url", url(tmp_path / "target"), cwd=tmp_path)
    assert missing.returncode == 2
    assert f"cannot open {tmp_path / 'nope.db'}" in missing.stderr
    assert not (tmp_path / "nope.db").exists()  # not created by looking
    assert not (tmp_path / "target" / "alertdesk.db").exists()


def test_backup_names_what_it_cannot_copy(alertdesk_database: Path, tmp_path: Path) -> None:
    missing = alertdesk("backup", str(tmp_path / "b.db"), "--database-url", url(tmp_path), cwd=tmp_path)
    assert missing.returncode == 2
    assert f"no database at {tmp_path / 'alertdesk.db'}" in missing.stderr
    assert not (tmp_path / "alertdesk.db").exists()  # not created by looking

    postgres = alertdesk(
        "backup", str(tmp_path / "b.db"), "--database-url", "postgresql+asyncpg://db/alertdesk", cwd=tmp_path
    )
    assert postgres.returncode == 2
    assert "for PostgreSQL use pg_dump -Fc and pg_restore" in postgres.stderr
    assert not (tmp_path / "b.db").exists()

    nowhere = tmp_path / "no-such-directory" / "b.db"
    unwritable = alertdesk(
        "backup", str(nowhere), "--database-url", f"sqlite+aiosqlite:///{alertdesk_database}", cwd=tmp_path
    )
    assert unwritable.returncode == 2
    assert f"cannot write {nowhere}: unable to open database file" in unwritable.stderr
