"""Helpers for the distributed tests: a pipeline of real processes on its own broker prefix and database schema.

Everything here talks to the machine's real RabbitMQ and PostgreSQL. Isolation is by name: each pipeline has
a fresh prefix for its exchanges and queues and a fresh schema, both removed afterwards. The servers themselves
are shared and never stopped; what the tests "stop" is a connection (`rabbitmqctl close_connection`) or the TCP
path to PostgreSQL (`TcpProxy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg

from dedup.rabbitmq.topology import Stream, Topology, delete
from tests.conftest import AMQP_URL, PG_URL
from tests.process import AlertdeskProcess
from ticketstore import db
from ticketstore.db import libpq_url

PAYLOADS = Path(__file__).parent / "payloads"
PARTITIONS = 8


def raw_dsn(url: str = PG_URL) -> str:
    return libpq_url(url)


@dataclass
class Pipeline:
    """`alertdesk ingest`, `dedup` ×n and `store` ×n on one prefix and schema; stopped and cleaned up by `close`."""

    workdir: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    database_url: str = PG_URL
    extra_env: dict[str, str] = field(default_factory=dict)
    ingest: AlertdeskProcess | None = None
    dedup: list[AlertdeskProcess] = field(default_factory=list)
    store: list[AlertdeskProcess] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return self.prefix

    @property
    def topology(self) -> Topology:
        return Topology(self.prefix, PARTITIONS)

    def env(self, **more: str) -> dict[str, str]:
        return {
            "ALERTDESK_BROKER_URL": AMQP_URL,
            "ALERTDESK_BROKER_PREFIX": self.prefix,
            "ALERTDESK_PARTITIONS": str(PARTITIONS),
            "ALERTDESK_DATABASE_URL": self.database_url,
            "ALERTDESK_DATABASE_SCHEMA": self.schema,
            "ALERTDESK_TAKEOVER_INTERVAL": "0.5",
            "ALERTDESK_PUBLISH_TIMEOUT": "3",
            "ALERTDESK_HOLD_SECONDS": "1",  # a held repeat's count lags by up to this: short, so tests wait little
            "ALERTDESK_LOG_LEVEL": "INFO",
            **self.extra_env,
            **more,
        }

    def process(self, command: str, index: int = 0, count: int = 1, **env: str) -> AlertdeskProcess:
        worker = {"ALERTDESK_WORKER_INDEX": str(index), "ALERTDESK_WORKER_COUNT": str(count)}
        return AlertdeskProcess(self.workdir, self.env(**worker, **env), command=command)

    async def start(self, workers: int = 2) -> Pipeline:
        await create_schema(self.schema)
        self.ingest = self.ingest or self.process("ingest")
        self.dedup = [self.process("dedup", i, workers) for i in range(workers)]
        self.store = [self.process("store", i, workers) for i in range(workers)]
        await start_all([self.ingest, *self.dedup, *self.store])
        return self

    async def close(self) -> None:
        for proc in [self.ingest, *self.dedup, *self.store]:
            if proc is not None and proc.proc is not None and proc.proc.poll() is None:
                proc.stop(signal.SIGKILL)
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            await delete(connection, self.topology)
        await drop_schema(self.schema)

    @property
    def url(self) -> str:
        assert self.ingest is not None
        return self.ingest.url

    def logs(self) -> str:
        procs = [p for p in [self.ingest, *self.dedup, *self.store] if p is not None]
        return "\n".join(f"--- {p.command} {p.port}\n{p.output()[-4000:]}" for p in procs)


async def start_all(procs: Iterable[AlertdeskProcess]) -> None:
    """Start processes side by side and wait until each is ready (its broker session up)."""
    procs = list(procs)
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
    await asyncio.gather(*(wait_ready(p) for p in procs))


async def wait_ready(proc: AlertdeskProcess, within: float = 30.0) -> None:
    async def ready() -> bool:
        return await asyncio.to_thread(readyz, proc) == 200  # off the loop: a TcpProxy in this loop may be in the path

    await eventually(ready, within, lambda: f"{proc.command} not ready:\n{proc.output()[-3000:]}")


def readyz(proc: AlertdeskProcess) -> int:
    try:
        with urllib.request.urlopen(f"{proc.url}/readyz", timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def restart(proc: AlertdeskProcess) -> AlertdeskProcess:
    """The same process kind, index and port, as a supervisor would restart it (its log goes on in the same file)."""
    again = AlertdeskProcess(proc.workdir, proc.env, command=proc.command)
    again.port, again.url, again.env, again.log = proc.port, proc.url, proc.env, proc.log
    return again.start()


async def eventually(check: Callable[[], Awaitable[bool]], within: float, explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(explain())


def metric(proc: AlertdeskProcess, name: str) -> float:
    """Sum of a metric's samples on a process's /metrics."""
    with urllib.request.urlopen(f"{proc.url}/metrics", timeout=3) as resp:
        text = resp.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


# --- database ---------------------------------------------------------------------------------------------


async def create_schema(schema: str) -> None:
    await db.create_schema(PG_URL, schema)


async def drop_schema(schema: str) -> None:
    await db.drop_schema(PG_URL, schema)


async def query(schema: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(raw_dsn(), server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


# --- broker -----------------------------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def active_consumers(prefix: str) -> dict[tuple[Stream, int], str]:
    """(stream, partition) → connection name of its active consumer, as the broker sees it."""
    names = {}
    for line in rabbitmqctl("list_connections", "pid", "client_properties").splitlines()[1:]:
        pid, _, props = line.partition("\t")
        found = re.search(r'\{"connection_name","([^"]*)"\}', props)
        if found:
            names[pid] = found.group(1)
    channels = dict(line.split("\t")[:2] for line in rabbitmqctl("list_channels", "pid", "connection").splitlines()[1:])
    queue = re.compile(rf"^{re.escape(prefix)}\.(alerts|tickets)\.(\d+)$")
    owners = {}
    for line in rabbitmqctl("list_consumers", "queue_name", "channel_pid", "active").splitlines()[1:]:
        name, channel, active = line.split("\t")[:3]
        match = queue.match(name)
        if match and active == "true":
            owners[Stream(match.group(1)), int(match.group(2))] = names.get(channels.get(channel, ""), "?")
    return owners


def queue_messages(prefix: str, stream: Stream) -> int:
    """Messages held by the broker in a stream's partition queues, ready or delivered but not yet acked."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.{stream.value}\.\d+$")
    total = 0
    for line in rabbitmqctl("list_queues", "name", "messages").splitlines()[1:]:
        name, count = line.split("\t")[:2]
        if pattern.match(name):
            total += int(count)
    return total


def close_connections(name_part: str) -> int:
    closed = 0
    for line in rabbitmqctl("list_connections", "pid", "client_properties").splitlines()[1:]:
        pid, _, props = line.partition("\t")
        if name_part in props:
            rabbitmqctl("close_connection", pid, "alertdesk test: connection closed on purpose")
            closed += 1
    return closed


def dead_letters_cli(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertdesk.cli", "dead-letters", *args],
        env={**pipeline.ingest.env} if pipeline.ingest else pipeline.env(),
        cwd=pipeline.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- sending alerts ---------------------------------------------------------------------------------------


def sequence(source: str, name: str, replace: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A `.jsonl` sequence of webhook bodies, with names substituted to make a copy for another key."""
    text = (PAYLOADS / source / f"{name}.jsonl").read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def post(
    session: aiohttp.ClientSession, base: str, source: str, body: dict[str, Any], key: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Idempotency-Key": key} if key else {}
    async with session.post(f"{base}/webhooks/{source}", json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def post_until_accepted(
    session: aiohttp.ClientSession, base: str, source: str, body: dict[str, Any], key: str, within: float = 30.0
) -> dict[str, Any]:
    """What a sender does: retry a 503 with the same Idempotency-Key until the alert is accepted."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            status, answer = await post(session, base, source, body, key)
            if status == 202:
                return answer
            assert status == 503, (status, answer)
        assert time.monotonic() < deadline, f"not accepted within {within}s"
        await asyncio.sleep(0.2)


async def all_tickets(session: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        async with session.get(f"{base}/api/tickets", params=params) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        out.extend(page["tickets"])
        cursor = page.get("next_cursor")
        if not cursor:
            return out


async def ticket(session: aiohttp.ClientSession, base: str, ticket_id: int) -> dict[str, Any]:
    async with session.get(f"{base}/api/tickets/{ticket_id}") as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def applied_count(schema: str) -> int:
    return int((await query(schema, "SELECT count(*) AS n FROM processed_alerts"))[0]["n"])
