"""A 202 is a promise: kill `alertdesk run` with SIGKILL under load, restart it, and account for every alert."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.process import AlertdeskProcess

pytestmark = pytest.mark.slow

KEYS = 40


def nagios_alert(host: int, kind: str, problem_id: int) -> dict[str, str]:
    problem = kind == "PROBLEM"
    return {
        "NOTIFICATIONTYPE": kind,
        "HOSTNAME": f"app-{host:02d}",
        "SERVICEDESC": "HTTP",
        "SERVICESTATE": "CRITICAL" if problem else "OK",
        "SERVICEOUTPUT": "HTTP CRITICAL - Socket timeout after 10 seconds" if problem else "HTTP OK",
        "SERVICEPROBLEMID": str(problem_id) if problem else "0",
        "LASTSERVICEPROBLEMID": "0" if problem else str(problem_id),
    }


async def load(
    url: str, accepted: list[tuple[str, str, str]], stop: asyncio.Event, enough: asyncio.Event, worker: int
) -> None:
    """One sender: its own keys, so each key's order is known; records (alert_id, kind, key) of every 202."""
    rng = random.Random(worker)
    hosts = [h for h in range(KEYS) if h % 8 == worker]
    problem_ids = dict.fromkeys(hosts, 0)
    is_open = dict.fromkeys(hosts, False)
    sent = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            host = rng.choice(hosts)
            kind = "RECOVERY" if is_open[host] and rng.random() < 0.2 else "PROBLEM"
            if kind == "PROBLEM" and not is_open[host]:
                problem_ids[host] += 1
            sent += 1
            headers = {"Idempotency-Key": f"crash-{worker}-{sent}"}
            try:
                async with session.post(
                    f"{url}/webhooks/nagios",
                    data=nagios_alert(host, kind, 1000 * host + problem_ids[host]),
                    headers=headers,
                ) as resp:
                    if resp.status != 202:
                        continue
                    body = await resp.json()
            except (TimeoutError, aiohttp.ClientError):
                return  # the server died under us: this request was never answered, so nothing was promised
            accepted.append((body["alert_id"], kind, body["dedup_key"]))
            if len(accepted) >= 1500:
                enough.set()
            is_open[host] = kind == "PROBLEM"


async def test_every_accepted_alert_survives_sigkill_exactly_once(tmp_path: Path) -> None:
    server = AlertdeskProcess(tmp_path, {"ALERTDESK_LOG_LEVEL": "WARNING"}).start()
    accepted: list[tuple[str, str, str]] = []
    stop, enough = asyncio.Event(), asyncio.Event()
    senders = [asyncio.create_task(load(server.url, accepted, stop, enough, w)) for w in range(8)]
    await asyncio.wait_for(enough.wait(), 60)
    server.stop(signal.SIGKILL)
    stop.set()
    await asyncio.gather(*senders)

    restarted = AlertdeskProcess(tmp_path, {"ALERTDESK_LOG_LEVEL": "WARNING"}).start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{restarted.url}/webhooks/nagios", data=nagios_alert(99, "PROBLEM", 1)) as resp,
        ):
            assert resp.status == 202
    finally:
        assert restarted.stop(signal.SIGTERM) == 0

    with sqlite3.connect(tmp_path / "alertdesk.db") as db:
        processed = {
            alert_id: (ticket_id, kind)
            for alert_id, ticket_id, kind in db.execute("SELECT alert_id, ticket_id, kind FROM processed_alerts")
        }
        tickets = {tid: (key, occ) for tid, key, occ in db.execute("SELECT id, dedup_key, occurrences FROM tickets")}
    missing = [a for a, _, _ in accepted if a not in processed]
    assert missing == [], f"{len(missing)} alerts answered 202 are not on a ticket"
    for alert_id, kind, key in accepted:
        ticket_id, applied_kind = processed[alert_id]
        assert applied_kind == kind.lower()
        if kind == "PROBLEM":
            assert tickets[ticket_id][0] == key, f"alert {alert_id} landed on another key's ticket"
    problems_per_ticket = Counter(tid for tid, kind in processed.values() if kind == "problem")
    for ticket_id, (_, occurrences) in tickets.items():
        assert occurrences == problems_per_ticket[ticket_id], f"ticket {ticket_id} counts a problem twice or misses one"
