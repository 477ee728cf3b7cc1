"""`alertdesk run` as a user meets it: a real process on a port, real HTTP, its own SQLite file."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.process import AlertdeskProcess
from ticketstore.migrate import head

PAYLOADS = Path(__file__).parent / "payloads"

pytestmark = pytest.mark.slow


@pytest.fixture
def alertdesk(tmp_path: Path) -> Iterator[AlertdeskProcess]:
    """`alertdesk run` as shipped: tickets written by its store writer process."""
    proc = AlertdeskProcess(tmp_path, {"ALERTDESK_LOG_LEVEL": "INFO"}).start()
    assert len(proc.children()) == 1
    yield proc
    proc.stop(signal.SIGKILL)


@pytest.fixture
def one_process(tmp_path: Path) -> Iterator[AlertdeskProcess]:
    """`alertdesk run` with ALERTDESK_STORE_PROCESS=false: the writer is a task of the server."""
    proc = AlertdeskProcess(tmp_path, {"ALERTDESK_LOG_LEVEL": "INFO", "ALERTDESK_STORE_PROCESS": "false"}).start()
    assert proc.children() == []
    yield proc
    proc.stop(signal.SIGKILL)


def nagios_form(kind: str, problem_id: str, state: str = "CRITICAL") -> dict[str, str]:
    return {
        "NOTIFICATIONTYPE": kind,
        "HOSTNAME": "web-01",
        "HOSTADDRESS": "10.0.4.21",
        "SERVICEDESC": "DISK /",
        "SERVICESTATE": state,
        "SERVICEOUTPUT": "DISK CRITICAL - free space: / 1841 MB (4.2% inode=87%);" if state != "OK" else "DISK OK",
        "SERVICEPROBLEMID": problem_id if kind == "PROBLEM" else "0",
        "LASTSERVICEPROBLEMID": "0" if kind == "PROBLEM" else problem_id,
        "pd_nagios_object": "service",
    }


async def tickets(session: aiohttp.ClientSession, base: str, **params: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/api/tickets", params=params) as resp:
        assert resp.status == 200
        body = await resp.json()
    return list(body["tickets"])


@pytest.mark.parametrize("mode", ["alertdesk", "one_process"])
async def test_nagios_problem_twice_then_recovery_gives_one_resolved_ticket(
    mode: str, request: pytest.FixtureRequest
) -> None:
    alertdesk: AlertdeskProcess = request.getfixturevalue(mode)
    async with aiohttp.ClientSession() as session:
        for form in (
            nagios_form("PROBLEM", "4121"),
            nagios_form("PROBLEM", "4121"),
            nagios_form("RECOVERY", "4121", "OK"),
        ):
            async with session.post(f"{alertdesk.url}/webhooks/nagios", data=form) as resp:
                assert resp.status == 202, await resp.text()
                assert (await resp.json())["dedup_key"] == "nagios:web-01/DISK /"
        found = await tickets(session, alertdesk.url)
    assert len(found) == 1
    assert found[0]["occurrences"] == 2
    assert found[0]["status"] == "resolved"
    assert found[0]["number"] == "INC-000001"


async def test_zabbix_problem_ack_and_recovery(alertdesk: AlertdeskProcess) -> None:
    base = {
        "EVENT.SOURCE": "0",
        "EVENT.ID": "81723",
        "EVENT.NSEVERITY": "4",
        "EVENT.NAME": "High CPU utilization (over 90% for 5m)",
        "TRIGGER.ID": "23119",
        "HOST.HOST": "db-02",
        "EVENT.UPDATE.ACTION": "{EVENT.UPDATE.ACTION}",
    }
    events = [
        {**base, "EVENT.VALUE": "1", "EVENT.UPDATE.STATUS": "0"},
        {
            **base,
            "EVENT.VALUE": "1",
            "EVENT.UPDATE.STATUS": "1",
            "EVENT.UPDATE.ACTION": "acknowledged",
            "USER.FULLNAME": "Jeanne Dupont (jdupont)",
        },
        {**base, "EVENT.VALUE": "0", "EVENT.UPDATE.STATUS": "0"},
    ]
    async with aiohttp.ClientSession() as session:
        statuses = []
        for event in events:
            async with session.post(f"{alertdesk.url}/webhooks/zabbix", json=event) as resp:
                assert resp.status == 202, await resp.text()
            statuses.append((await tickets(session, alertdesk.url))[0]["status"])
        ticket = (await tickets(session, alertdesk.url))[0]
    assert statuses == ["open", "in_progress", "resolved"]
    assert ticket["acknowledged_by"] == "Jeanne Dupont (jdupont)"
    assert ticket["dedup_key"] == "zabbix:trigger/23119"
    assert ticket["priority"] == "P2"


async def test_solarwinds_raw_form_trigger_twice_then_reset(alertdesk: AlertdeskProcess) -> None:
    def body(action: str) -> bytes:
        fields = [
            ("ActionType", action),
            ("alias", "1842-77"),
            ("NodeName", "CORE-SW-01"),
            ("AlertName", "Interface down"),
            ("AlertMessage", 'Gi1/0/24 "uplink" down & C:\\ Label: CORP\\jdupont — 100% loss'),
            ("Severity", "Critical"),
        ]
        return "&\r\n".join(f"{k}={v}" for k, v in fields).encode()

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as session:
        for action in ("Create", "Create", "Close"):
            async with session.post(f"{alertdesk.url}/webhooks/solarwinds", data=body(action), headers=headers) as resp:
                assert resp.status == 202, await resp.text()
        found = await tickets(session, alertdesk.url, source="solarwinds")
    assert [(t["dedup_key"], t["occurrences"], t["status"]) for t in found] == [("solarwinds:1842", 2, "resolved")]
    assert 'Gi1/0/24 "uplink" down & C:\\ Label: CORP\\jdupont' in found[0]["description"]


async def test_200_concurrent_identical_problems_make_one_ticket(
    tmp_path: Path, database: tuple[str, str | None]
) -> None:
    url, schema = database
    env = {"ALERTDESK_DATABASE_URL": url, **({"ALERTDESK_DATABASE_SCHEMA": schema} if schema else {})}
    proc = AlertdeskProcess(tmp_path, env).start()
    try:
        async with aiohttp.ClientSession() as session:

            async def post() -> int:
                async with session.post(f"{proc.url}/webhooks/nagios", data=nagios_form("PROBLEM", "9001")) as resp:
                    return resp.status

            statuses = await asyncio.gather(*(post() for _ in range(200)))
            found = await tickets(session, proc.url)
    finally:
        proc.stop(signal.SIGKILL)
    assert statuses == [202] * 200
    assert [(t["occurrences"], t["status"]) for t in found] == [(200, "open")]


async def test_retry_with_same_idempotency_key_counts_once(alertdesk: AlertdeskProcess) -> None:
    headers = {"Idempotency-Key": "nagios-4121-1"}
    async with aiohttp.ClientSession() as session:
        ids = []
        for _ in range(3):
            async with session.post(
                f"{alertdesk.url}/webhooks/nagios", data=nagios_form("PROBLEM", "4121"), headers=headers
            ) as resp:
                assert resp.status == 202
                ids.append((await resp.json())["alert_id"])
        found = await tickets(session, alertdesk.url)
    assert len(set(ids)) == 1
    assert found[0]["occurrences"] == 1


async def test_bad_input_changes_nothing(alertdesk: AlertdeskProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{alertdesk.url}/webhooks/zabbix", json={"EVENT.SOURCE": "0", "TRIGGER.ID": "{TRIGGER.ID}"}
        ) as resp:
            assert resp.status == 422
            locs = [d["loc"] for d in (await resp.json())["detail"]]
        async with session.post(
            f"{alertdesk.url}/webhooks/nagios", data=b"", headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
        found = await tickets(session, alertdesk.url)
    assert ["TRIGGER.ID"] in locs
    assert found == []


def test_sigterm_stops_cleanly(alertdesk: AlertdeskProcess) -> None:
    assert alertdesk.stop(signal.SIGTERM) == 0
    assert "stopped" in alertdesk.output()


def test_second_run_on_same_database_is_refused(alertdesk: AlertdeskProcess, tmp_path: Path) -> None:
    second = AlertdeskProcess(tmp_path, {})
    with pytest.raises(AssertionError, match="another alertdesk is running"):
        second.start(timeout=20)
    assert second.proc is not None and second.proc.returncode == 2


def test_a_database_upgraded_by_a_newer_alertdesk_is_refused(tmp_path: Path) -> None:
    first = AlertdeskProcess(tmp_path, {}).start()
    assert first.stop(signal.SIGTERM) == 0
    with sqlite3.connect(tmp_path / "alertdesk.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")

    again = AlertdeskProcess(tmp_path, {})
    with pytest.raises(AssertionError, match="0099_from_the_future, which this alertdesk does not know"):
        again.start(timeout=20)
    assert again.proc is not None and again.proc.returncode == 2


def test_database_is_migrated_and_in_wal_mode(alertdesk: AlertdeskProcess, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "alertdesk.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head()
