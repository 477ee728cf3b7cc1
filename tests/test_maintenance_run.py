"""Maintenance windows end to end: the `alertdesk maintenance` command against a real `alertdesk run`, and a
window created through one `alertdesk store` silencing what another one stores (RabbitMQ and PostgreSQL).

Notifications go to a real HTTP receiver on 127.0.0.1, so "pages exactly once" is what that receiver got.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster import Pipeline, all_tickets, eventually, metric
from tests.process import AlertdeskProcess
from tests.test_notify import Receiver, receiver  # noqa: F401

pytestmark = pytest.mark.slow


def policy_file(tmp_path: Path, receiver: Receiver) -> Path:  # noqa: F811
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"""
channels:
  ops-hook: {{type: webhook, url: "{receiver.url("ops-hook")}"}}
severities:
  critical: {{priority: P1, respond_within: 15m, resolve_within: 4h, notify: [ops-hook],
             escalation: [{{after: 15m, group: oncall-l2, notify: [ops-hook]}}]}}
""",
        encoding="utf-8",
    )
    return path


def problem(host: str, service: str = "PostgreSQL") -> dict[str, str]:
    return {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": host,
        "SERVICEDESC": service,
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "connection refused",
        "SERVICEPROBLEMID": "7001",
        "pd_nagios_object": "service",
    }


def cli(proc: AlertdeskProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`alertdesk maintenance …` as an operator types it, on the running alertdesk's database."""
    return subprocess.run(
        [sys.executable, "-m", "alertdesk.cli", "maintenance", *args],
        cwd=proc.workdir,
        env=proc.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def opened(receiver: Receiver) -> list[str]:  # noqa: F811
    return sorted(d.body["ticket"]["host"] for d in receiver.deliveries if d.body.get("event") == "opened")


@pytest.fixture
def alertdesk(tmp_path: Path, receiver: Receiver) -> Iterator[AlertdeskProcess]:  # noqa: F811
    env = {"ALERTDESK_POLICY": str(policy_file(tmp_path, receiver)), "ALERTDESK_LOG_LEVEL": "INFO"}
    proc = AlertdeskProcess(tmp_path, env).start()
    yield proc
    proc.stop(signal.SIGKILL)


async def test_silence_db_hosts_from_the_cli_and_page_once_when_it_is_ended(
    alertdesk: AlertdeskProcess,
    receiver: Receiver,  # noqa: F811
) -> None:
    added = cli(alertdesk, "add", "--host", "db*", "--for", "2h", "--comment", "Patching PostgreSQL, CHG0042")
    assert added.returncode == 0, added.stderr
    assert "maintenance window 1 added" in added.stdout
    assert "host=db*" in added.stdout and "active" in added.stdout

    async with aiohttp.ClientSession() as session:
        for host in ("db-paris-01", "db-paris-02", "web-01"):
            async with session.post(f"{alertdesk.url}/webhooks/nagios", data=problem(host)) as resp:
                assert resp.status == 202, await resp.text()
        found = {t["host"]: t for t in await all_tickets(session, alertdesk.url)}
        assert {h: (t["status"], t["suppressed"]) for h, t in found.items()} == {
            "db-paris-01": ("open", True),
            "db-paris-02": ("open", True),
            "web-01": ("open", False),
        }

        async def web_paged() -> bool:
            return opened(receiver) == ["web-01"]

        await eventually(web_paged, 10, lambda: f"deliveries: {receiver.deliveries}")

        listed = cli(alertdesk, "list", "--state", "active")
        assert listed.returncode == 0 and "Patching PostgreSQL, CHG0042" in listed.stdout
        ended = cli(alertdesk, "end", "1")
        assert ended.returncode == 0, ended.stderr

        async def db_paged() -> bool:
            return opened(receiver) == ["db-paris-01", "db-paris-02", "web-01"]

        await eventually(db_paged, 10, lambda: f"deliveries: {opened(receiver)}\n{alertdesk.output()[-3000:]}")
        assert not any(t["suppressed"] for t in await all_tickets(session, alertdesk.url))
        for _ in range(3):  # and never again: the chores keep running every second
            await session.get(f"{alertdesk.url}/healthz")
            await asyncio.sleep(0.7)
    assert opened(receiver) == ["db-paris-01", "db-paris-02", "web-01"]
    assert "ended" in cli(alertdesk, "list", "--state", "ended").stdout
    refused = cli(alertdesk, "add", "--for", "2h", "--comment", "everything?")
    assert (refused.returncode, refused.stderr.strip().split(":")[1].strip()) == (
        2,
        "--host/--service/--source/--instance/--key",
    )


@pytest.fixture
async def pipeline(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Pipeline]:  # noqa: F811
    pipe = Pipeline(tmp_path, extra_env={"ALERTDESK_POLICY": str(policy_file(tmp_path, receiver))})
    try:
        yield await pipe.start(workers=2)
    finally:
        await pipe.close()


@pytest.mark.postgres
async def test_a_window_created_through_one_store_silences_what_the_other_stores(
    pipeline: Pipeline,
    receiver: Receiver,  # noqa: F811
) -> None:
    one, two = pipeline.store
    hosts = [f"db-{n:02d}" for n in range(12)]  # keys spread over the partitions of both store workers
    async with aiohttp.ClientSession() as session:
        body: dict[str, Any] = {"match": {"host": "db-*"}, "duration": "1h", "comment": "Rolling upgrade"}
        async with session.post(f"{one.url}/api/maintenance", json=body) as resp:
            assert resp.status == 201, await resp.text()
        await asyncio.sleep(1.5)  # the other store reads the windows again within a second
        for host in hosts:
            async with session.post(f"{pipeline.url}/webhooks/nagios", data=problem(host)) as resp:
                assert resp.status == 202, await resp.text()

        async def all_stored() -> bool:
            return len(await all_tickets(session, two.url)) == len(hosts)

        await eventually(all_stored, 20, pipeline.logs)
        assert all(t["suppressed"] for t in await all_tickets(session, two.url))
        assert metric(one, "alertdesk_alerts_silenced_total") + metric(two, "alertdesk_alerts_silenced_total") == 12
        assert metric(one, "alertdesk_alerts_silenced_total") and metric(two, "alertdesk_alerts_silenced_total")

        async with session.delete(f"{two.url}/api/maintenance/1") as resp:
            assert resp.status == 200, await resp.text()

        async def all_paged() -> bool:
            return opened(receiver) == hosts

        await eventually(all_paged, 15, lambda: f"{opened(receiver)}\n{pipeline.logs()}")
        await asyncio.sleep(2)
    assert opened(receiver) == hosts  # both stores run the chore: still once each
    keys = [d.idempotency_key for d in receiver.deliveries]
    assert len(keys) == len(set(keys)) == len(hosts)
