"""Overload of `alertdesk run`: 2,000 concurrent connections get a fast 202 or 503, and a 503 means "not applied".

The hand-off queue is bounded (ALERTDESK_MAX_PENDING, small here so that the run overflows it) and a request that
times out withdraws its alert unless a commit holding it is in flight; `alertdesk_handoff_unavailable_total
{reason="in_flight"}` counts those, the only 503s that may still be on a ticket.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import uvloop

from normalizers.schema import Source, alert_id_for
from tests.cluster import metric
from tests.process import AlertdeskProcess

pytestmark = pytest.mark.slow

CONNECTIONS = 2000
REQUESTS_EACH = 2
PUBLISH_TIMEOUT = 5.0
RSS_LIMIT_MB = 300  # measured peak: about 130 MB (server) and 70 MB (writer); unbounded it grows with the backlog


@pytest.fixture(autouse=True)
def many_files() -> Iterator[None]:
    """2,000 client sockets in this process need more than the usual 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class Answers:
    accepted: list[str] = field(default_factory=list)  # Idempotency-Keys answered 202
    refused: list[str] = field(default_factory=list)  # answered 503
    latencies: list[float] = field(default_factory=list)
    others: list[int] = field(default_factory=list)


def form(connection: int, n: int) -> dict[str, str]:
    return {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": f"web-{connection % 200:03d}",
        "SERVICEDESC": "DISK /",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "DISK CRITICAL - free space: / 1841 MB",
        "SERVICEPROBLEMID": str(1000 + connection % 200),
        "LASTSERVICEPROBLEMID": "0",
        "pd_nagios_object": "service",
    }


async def hammer(host: str, port: int, answers: Answers) -> None:
    """Every connection at once, each sending its requests back to back over keep-alive; a 503 is not retried.

    A raw HTTP/1.1 client: on two shared cores an aiohttp client would take the server's CPU and its own latency.
    """

    async def connection(c: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for n in range(REQUESTS_EACH):
                key = f"overload-{c}-{n}"
                started = time.monotonic()
                writer.write(request(host, port, key, urllib.parse.urlencode(form(c, n)).encode()))
                status, headers = await response(reader)
                answers.latencies.append(time.monotonic() - started)
                if status == 202:
                    answers.accepted.append(key)
                elif status == 503:
                    assert headers.get("retry-after"), "a 503 without Retry-After"
                    answers.refused.append(key)
                else:
                    answers.others.append(status)
        finally:
            writer.close()

    await asyncio.gather(*(connection(c) for c in range(CONNECTIONS)))


def request(host: str, port: int, key: str, body: bytes) -> bytes:
    head = (
        f"POST /webhooks/nagios HTTP/1.1\r\nHost: {host}:{port}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sample_rss(pids: list[int], peaks: dict[int, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for pid in pids:
            peaks[pid] = max(peaks.get(pid, 0.0), rss_mb(pid))
        await asyncio.sleep(0.1)


def alert_id(key: str) -> str:
    return alert_id_for(Source.NAGIOS, None, key)


async def test_2000_connections_get_fast_answers_and_a_503_means_not_applied(tmp_path: Path) -> None:
    env = {
        "ALERTDESK_LOG_LEVEL": "ERROR",
        "ALERTDESK_MAX_PENDING": "100",
        "ALERTDESK_PUBLISH_TIMEOUT": str(PUBLISH_TIMEOUT),
    }
    proc = AlertdeskProcess(tmp_path, env).start()
    answers, peaks, stop = Answers(), dict[int, float](), asyncio.Event()
    try:
        pids = [proc.proc.pid, *proc.children()] if proc.proc else []
        sampler = asyncio.create_task(sample_rss(pids, peaks, stop))
        started = time.monotonic()
        # the client on uvloop in a thread of its own: half the CPU of the default loop, taken from the server
        await asyncio.to_thread(uvloop.run, asyncio.wait_for(hammer("127.0.0.1", proc.port, answers), 120))
        elapsed = time.monotonic() - started
        stop.set()
        await sampler
        in_flight = metric(proc, 'alertdesk_handoff_unavailable_total{reason="in_flight"}')
        full = metric(proc, 'alertdesk_handoff_unavailable_total{reason="full"}')
        withdrawn = metric(proc, 'alertdesk_handoff_unavailable_total{reason="withdrawn"}')
    finally:
        proc.stop(signal.SIGTERM)

    total = CONNECTIONS * REQUESTS_EACH
    latencies = sorted(answers.latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"\n{total} requests in {elapsed:.1f}s: {len(answers.accepted)} x 202, {len(answers.refused)} x 503 "
        f"({full:g} full, {withdrawn:g} withdrawn, {in_flight:g} in flight); p50 {latencies[len(latencies) // 2]:.3f}s p99 {p99:.3f}s; "
        f"peak RSS {', '.join(f'{mb:.0f} MB' for mb in peaks.values())}"
    )
    assert answers.others == []
    assert len(answers.latencies) == total
    assert answers.refused and answers.accepted, "the run should both overflow the queue and get alerts through"
    assert p99 < PUBLISH_TIMEOUT
    assert all(mb < RSS_LIMIT_MB for mb in peaks.values()), peaks

    with sqlite3.connect(tmp_path / "alertdesk.db") as db:
        processed = dict(db.execute("SELECT alert_id, ticket_id FROM processed_alerts").fetchall())
        occurrences = db.execute("SELECT coalesce(sum(occurrences), 0) FROM tickets").fetchone()[0]
    accepted, refused = {alert_id(k) for k in answers.accepted}, {alert_id(k) for k in answers.refused}
    assert all(processed.get(a) is not None for a in accepted), "a 202 alert is on no ticket"
    refused_applied = refused & processed.keys()
    assert len(refused_applied) <= in_flight, "a 503 that was not in a commit in flight was applied"
    assert processed.keys() == accepted | refused_applied
    assert occurrences == len(processed), "an alert counted on a ticket other than once"


async def post_alert(session: aiohttp.ClientSession, base: str, key: str) -> tuple[int, str, float]:
    started = time.monotonic()
    async with session.post(f"{base}/webhooks/nagios", data=form(0, 0), headers={"Idempotency-Key": key}) as resp:
        body = await resp.json()
        return resp.status, body.get("detail", ""), time.monotonic() - started


async def test_a_timed_out_alert_is_withdrawn_unless_its_commit_is_in_flight(tmp_path: Path) -> None:
    """The database locked by another program: the alert the writer holds is applied late, the queued ones never."""
    env = {"ALERTDESK_MAX_PENDING": "3", "ALERTDESK_PUBLISH_TIMEOUT": "1"}
    proc = AlertdeskProcess(tmp_path, env).start()
    lock = sqlite3.connect(tmp_path / "alertdesk.db", isolation_level=None)
    try:
        async with aiohttp.ClientSession() as session:
            lock.execute("BEGIN IMMEDIATE")  # the writer's transaction now waits for SQLite's lock
            held = asyncio.create_task(post_alert(session, proc.url, "held"))
            await asyncio.sleep(0.3)  # the writer has taken it and waits for the lock
            queued = [asyncio.create_task(post_alert(session, proc.url, f"queued-{i}")) for i in range(3)]
            await asyncio.sleep(0.2)
            refused = await post_alert(session, proc.url, "over-the-bound")
            answers = [await held, *[await q for q in queued]]
            lock.execute("ROLLBACK")
            await asyncio.sleep(1.0)  # the held batch commits now
            retried = await post_alert(session, proc.url, "held")  # the sender's retry, same Idempotency-Key
            metrics = {
                r: metric(proc, f'alertdesk_handoff_unavailable_total{{reason="{r}"}}')
                for r in ("full", "withdrawn", "in_flight")
            }
    finally:
        lock.close()
        proc.stop(signal.SIGTERM)

    assert refused[0] == 503 and "overloaded" in refused[1] and refused[2] < 0.5
    assert [status for status, _, _ in answers] == [503] * 4
    assert "may still be applied" in answers[0][1]
    assert all("not applied" in detail for _, detail, _ in answers[1:])
    assert retried[0] == 202
    assert metrics == {"full": 1, "withdrawn": 3, "in_flight": 1}
    with sqlite3.connect(tmp_path / "alertdesk.db") as db:
        processed = {row[0] for row in db.execute("SELECT alert_id FROM processed_alerts")}
        occurrences = db.execute("SELECT sum(occurrences) FROM tickets").fetchone()[0]
    assert processed == {alert_id("held")}, "only the alert whose commit was in flight is applied"
    assert occurrences == 1
