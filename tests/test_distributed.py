"""Distributed mode as an operator runs it: `alertdesk ingest`, `dedup` ×2 and `store` ×2 as real processes on the
machine's RabbitMQ and PostgreSQL, each test on its own queue prefix and schema.

What is broken on purpose is never a shared server: a worker is killed with SIGKILL, the broker "goes away" for
ingest through a TCP proxy (and by closing its connection with rabbitmqctl), PostgreSQL "stops" for the store
behind a TCP proxy.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest

from dedup.rabbitmq.broker import SCHEMA_HEADER
from dedup.rabbitmq.partitions import partition_of
from dedup.rabbitmq.topology import Stream, declare, queue_counts
from normalizers.schema import SCHEMA_VERSION, Alert, Kind, Severity, Source, TicketCommand
from tests.cluster import (
    PARTITIONS,
    Pipeline,
    active_consumers,
    all_tickets,
    applied_count,
    close_connections,
    dead_letters_cli,
    eventually,
    metric,
    post,
    query,
    queue_messages,
    raw_dsn,
    readyz,
    restart,
    sequence,
    start_all,
    ticket,
    wait_ready,
)
from tests.conftest import AMQP_URL, PG_URL
from tests.load import Load, check_exactly_once, drive, keys
from tests.process import AlertdeskProcess, free_port
from tests.tcpproxy import TcpProxy
from ticketstore.worker import COMMANDS

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

# Each sequence is posted in several copies (other hosts, triggers, objects), so keys spread over the partitions.
SEQUENCES: list[tuple[str, str, Callable[[int], dict[str, str]]]] = [
    ("nagios", "sequence-disk-full", lambda n: {"web-01": f"web-{n + 1:02d}"}),
    ("nagios", "sequence-swap-flapping", lambda n: {"app-02": f"app-{n + 11:02d}"}),
    ("nagios", "sequence-host-downtime", lambda n: {"db-paris-02": f"db-paris-{n + 11:02d}"}),
    (
        "zabbix",
        "sequence-memory-trigger",
        lambda n: {
            '"TRIGGER.ID": "24517"': f'"TRIGGER.ID": "{24517 + n}"',
            "app-fr-par-07": f"app-fr-par-{n + 11:02d}",
        },
    ),
    (
        "solarwinds",
        "sequence-node-down",
        lambda n: {'"AlertObjectID": "1842"': f'"AlertObjectID": "{1842 + n}"', "CORE-SW-01": f"CORE-SW-{n + 11:02d}"},
    ),
]
COPIES = 6


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    pipe = Pipeline(tmp_path)
    try:
        yield pipe
    finally:
        await pipe.close()


async def split_between_two(pipe: Pipeline) -> None:
    """Each stage's two workers are the active consumers of their own partitions (p % 2), as the broker says."""

    async def split() -> bool:
        owners = await asyncio.to_thread(active_consumers, pipe.prefix)
        return all(
            owners.get((stream, p), "").rsplit(" (", 1)[0] == f"alertdesk {stage} {p % 2}"
            for stream, stage in ((Stream.ALERTS, "dedup"), (Stream.TICKETS, "store"))
            for p in range(PARTITIONS)
        )

    await eventually(split, 20, lambda: f"partitions not split between the workers\n{pipe.logs()}")


async def send_sequences(base: str, applied: Callable[[str], Awaitable[bool]] | None = None) -> int:
    """Post every copy of every sequence: one key's events one after the other, the keys side by side.

    A monitoring system sends a key's notifications minutes apart; `applied` (distributed run) waits for each to
    reach its ticket before the next, as the embedded mode's 202 does, so both runs see the same events one by one.
    """

    async def one_key(session: aiohttp.ClientSession, source: str, events: list[dict[str, Any]]) -> int:
        for body in events:
            status, answer = await post(session, base, source, body)
            assert status == 202, answer
            if applied is not None:
                await wait_applied(applied, answer["alert_id"])
        return len(events)

    async with aiohttp.ClientSession() as session:
        counts = await asyncio.gather(
            *(
                one_key(session, source, sequence(source, name, vary(n)))
                for source, name, vary in SEQUENCES
                for n in range(COPIES)
            )
        )
    return sum(counts)


async def wait_applied(applied: Callable[[str], Awaitable[bool]], alert_id: str) -> None:
    await eventually(lambda: applied(alert_id), 10, lambda: f"alert {alert_id} not applied")


async def tickets_by_key(base: str) -> dict[str, list[dict[str, Any]]]:
    """What an operator sees per key, oldest ticket first; ids, numbers and times differ between runs."""
    async with aiohttp.ClientSession() as session:
        found: dict[str, list[dict[str, Any]]] = {}
        for summary in sorted(await all_tickets(session, base), key=lambda t: t["id"]):
            full = await ticket(session, base, summary["id"])
            found.setdefault(full["dedup_key"], []).append(
                {
                    **{
                        k: full[k]
                        for k in (
                            "status",
                            "severity",
                            "peak_severity",
                            "priority",
                            "occurrences",
                            "acknowledged_by",
                            "flapping",
                            "suppressed",
                            "title",
                            "description",
                            "source_refs",
                        )
                    },
                    "history": [h["kind"] for h in full["history"]],
                }
            )
    return found


async def test_the_pipeline_gives_the_same_tickets_as_the_embedded_mode(pipeline: Pipeline, tmp_path: Path) -> None:
    embedded = AlertdeskProcess(tmp_path, {"ALERTDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"})
    await asyncio.gather(pipeline.start(workers=2), asyncio.to_thread(embedded.start))
    pool = await asyncpg.create_pool(
        raw_dsn(), server_settings={"search_path": pipeline.schema}, min_size=1, max_size=8
    )
    try:
        await split_between_two(pipeline)

        async def applied(alert_id: str) -> bool:
            return bool(await pool.fetchval("SELECT 1 FROM processed_alerts WHERE alert_id = $1", alert_id))

        sent, sent_embedded = await asyncio.gather(send_sequences(pipeline.url, applied), send_sequences(embedded.url))
        distributed = await tickets_by_key(pipeline.store[0].url)
        reference = await tickets_by_key(embedded.url)
    finally:
        await pool.close()
        embedded.stop(signal.SIGKILL)
    assert sent == sent_embedded == COPIES * sum(len(sequence(s, n)) for s, n, _ in SEQUENCES)
    assert len(reference) == COPIES * len(SEQUENCES)
    assert {t["status"] for ts in reference.values() for t in ts} >= {"open", "resolved"}
    assert {h for ts in reference.values() for t in ts for h in t["history"]} >= {"severity_raised", "acknowledged"}
    assert distributed == reference


async def test_a_killed_worker_s_partitions_are_taken_over_and_handed_back(pipeline: Pipeline) -> None:
    await pipeline.start(workers=2)
    await split_between_two(pipeline)
    pipeline.dedup[1].stop(signal.SIGKILL)
    pipeline.store[1].stop(signal.SIGKILL)

    async def taken_over() -> bool:
        owners = await asyncio.to_thread(active_consumers, pipeline.prefix)
        return all(
            owners.get((stream, p), "").startswith(f"alertdesk {stage} 0 ")
            for stream, stage in ((Stream.ALERTS, "dedup"), (Stream.TICKETS, "store"))
            for p in range(PARTITIONS)
        )

    await eventually(taken_over, 20, lambda: f"no takeover\n{pipeline.logs()}")
    survivors = keys(48)  # 16 keys per source: every partition gets some
    load = Load()
    await drive(pipeline.url, survivors, 300, load, connections=16)
    await check_exactly_once(pipeline, survivors, load)

    pipeline.dedup[1] = await asyncio.to_thread(restart, pipeline.dedup[1])
    pipeline.store[1] = await asyncio.to_thread(restart, pipeline.store[1])
    await split_between_two(pipeline)
    await drive(pipeline.url, survivors, 600, load, connections=16)
    await check_exactly_once(pipeline, survivors, load)
    assert metric(pipeline.dedup[1], "alertdesk_broker_received_total") > 0
    assert metric(pipeline.store[1], "alertdesk_broker_received_total") > 0


async def test_1000_concurrent_identical_new_problems_make_one_ticket(pipeline: Pipeline) -> None:
    await pipeline.start(workers=2)
    body = sequence("zabbix", "sequence-memory-trigger")[0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        answers = await asyncio.gather(*(post(session, pipeline.url, "zabbix", body) for _ in range(1000)))

        async def applied() -> bool:
            return await applied_count(pipeline.schema) == 1000

        await eventually(applied, 30, lambda: f"not all applied\n{pipeline.logs()}")
        found = await all_tickets(session, pipeline.store[0].url)
    assert [status for status, _ in answers] == [202] * 1000
    assert len({answer["alert_id"] for _, answer in answers}) == 1000
    assert [(t["dedup_key"], t["occurrences"], t["status"]) for t in found] == [("zabbix:trigger/24517", 1000, "open")]
    history = await query(pipeline.schema, "SELECT count(*) AS n FROM ticket_history")
    assert history[0]["n"] < 1000  # repeats were folded before the store: far fewer writes than alerts


@pytest.mark.timeout(300)  # 10,000 alerts through five processes: ~60 s alone, over 120 s on a busy 2-core machine
async def test_kill_9_of_a_dedup_and_a_store_worker_during_a_run_applies_every_alert_once(pipeline: Pipeline) -> None:
    await pipeline.start(workers=2)
    await split_between_two(pipeline)
    load_keys, load, total = keys(150), Load(), 10_000

    async def chaos() -> None:
        for threshold, action in (
            (2500, lambda: pipeline.dedup[1].stop(signal.SIGKILL)),
            (4250, lambda: pipeline.store[1].stop(signal.SIGKILL)),
            (6000, lambda: pipeline.dedup.__setitem__(1, restart(pipeline.dedup[1]))),
            (6000, lambda: pipeline.store.__setitem__(1, restart(pipeline.store[1]))),
        ):
            await load.reached(threshold)
            await asyncio.to_thread(action)

    await asyncio.gather(drive(pipeline.url, load_keys, total, load, connections=48), chaos())
    assert len(load.accepted) == total
    await check_exactly_once(pipeline, load_keys, load)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        assert await queue_counts(connection, pipeline.topology.dead_letters) == (0, 0)


async def test_kill_9_of_dedup_while_it_holds_repeats_loses_none_and_counts_none_twice(tmp_path: Path) -> None:
    """The held repeats' messages are not acked: after a kill they are redelivered, and each alert counts once."""
    held = {"ALERTDESK_HOLD_SECONDS": "300", "ALERTDESK_HOLD_QUIET_SECONDS": "300", "ALERTDESK_HOLD_COUNT": "1000"}
    pipeline = Pipeline(tmp_path, extra_env=held)
    try:
        await pipeline.start(workers=1)
        load_keys, load = keys(30), Load()
        await drive(pipeline.url, load_keys, 1500, load, connections=16)

        async def news_applied() -> bool:  # the news is through: what is missing now is what dedup holds
            return await metric_async(pipeline.store[0], "alertdesk_alert_to_ticket_seconds_count") > 0

        await eventually(news_applied, 20, lambda: f"nothing applied\n{pipeline.logs()}")
        held = len(load.accepted) - await applied_count(pipeline.schema)
        assert held > 100, "the repeats should wait in dedup's hold"
        pipeline.dedup[0].stop(signal.SIGKILL)
        pipeline.dedup[0] = pipeline.process("dedup", ALERTDESK_HOLD_SECONDS="1")
        await start_all([pipeline.dedup[0]])
        await check_exactly_once(pipeline, load_keys, load)
        assert metric(pipeline.store[0], "alertdesk_repeat_to_ticket_seconds_count") > 0
    finally:
        await pipeline.close()


async def metric_async(proc: AlertdeskProcess, name: str) -> float:
    return await asyncio.to_thread(metric, proc, name)


async def test_ingest_answers_503_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    closed_port = free_port()
    ingest = AlertdeskProcess(
        tmp_path, {"ALERTDESK_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{closed_port}/"}, "ingest"
    )
    ingest.start()
    try:
        body = sequence("nagios", "sequence-disk-full")[0]
        async with aiohttp.ClientSession() as session, session.post(f"{ingest.url}/webhooks/nagios", json=body) as resp:
            assert resp.status == 503
            assert int(resp.headers["Retry-After"]) > 0
            answer = await resp.json()
        assert answer["error"] == "unavailable"
        assert "guest" not in str(answer)  # no credentials in what the sender sees
        assert readyz(ingest) == 503
    finally:
        ingest.stop(signal.SIGKILL)


async def test_ingest_recovers_by_itself_when_the_broker_comes_back(pipeline: Pipeline) -> None:
    broker = await TcpProxy(5672).start()
    pipeline.ingest = pipeline.process("ingest", ALERTDESK_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{broker.port}/")
    await pipeline.start(workers=1)  # `start` keeps an ingest that is already configured
    load_keys, load = keys(30), Load()
    sender = asyncio.create_task(drive(pipeline.url, load_keys, 800, load, connections=8))
    await load.reached(200)
    await broker.stop()
    async with aiohttp.ClientSession() as session:
        status, _ = await post(session, pipeline.url, "nagios", sequence("nagios", "sequence-disk-full")[0])
    assert status == 503
    assert readyz(pipeline.ingest) == 503
    await asyncio.sleep(2)
    await broker.start()
    await sender
    assert len(load.accepted) == 800
    assert close_connections(f"alertdesk ingest (pid {pipeline.ingest.proc.pid})") == 1  # type: ignore[union-attr]
    await wait_ready(pipeline.ingest)
    await drive(pipeline.url, load_keys, 900, load, connections=8)
    await check_exactly_once(pipeline, load_keys, load)
    await broker.stop()


@pytest.mark.parametrize(
    "outage",
    [10, pytest.param(180, marks=[pytest.mark.timeout(420), pytest.mark.long_wait], id="3-minutes")],
    ids=lambda s: f"{s}s",
)
async def test_database_outage_backlog_waits_in_rabbitmq_then_drains_once(pipeline: Pipeline, outage: int) -> None:
    database = await TcpProxy(5432).start()
    pipeline.database_url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{database.port}")
    await pipeline.start(workers=1)
    load_keys, load = keys(300), Load()
    await drive(pipeline.url, load_keys, 100, load)
    await check_exactly_once(pipeline, load_keys, load)

    await database.stop()
    await drive(pipeline.url, load_keys, 1000, load)

    async def held_in_rabbitmq() -> bool:
        return (
            readyz(pipeline.store[0]) == 503
            and await asyncio.to_thread(queue_messages, pipeline.prefix, Stream.TICKETS) > 0
        )

    await eventually(held_in_rabbitmq, 15, lambda: f"no backlog in RabbitMQ\n{pipeline.logs()}")
    await asyncio.sleep(outage - 2)  # the database stays away for `outage` seconds in all
    assert await applied_count(pipeline.schema) == 100
    await database.start()
    await check_exactly_once(pipeline, load_keys, load)
    await wait_ready(pipeline.store[0])

    async def backlog_gone() -> bool:
        return await asyncio.to_thread(queue_messages, pipeline.prefix, Stream.TICKETS) == 0

    await eventually(backlog_gone, 15, lambda: f"backlog left in RabbitMQ\n{pipeline.logs()}")
    assert metric(pipeline.store[0], "alertdesk_broker_retries_total") > 0
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        assert await queue_counts(connection, pipeline.topology.dead_letters) == (0, 0)
    await database.stop()


async def test_a_poison_message_is_dead_lettered_with_its_reason_and_replayed_after_a_fix(pipeline: Pipeline) -> None:
    await pipeline.start(workers=1)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        alerts = await channel.get_exchange(pipeline.topology.exchange(Stream.ALERTS))
        garbage = aio_pika.Message(b"HOST web-01 DISK CRITICAL", content_type="text/plain", message_id="hand-made-1")
        await alerts.publish(garbage, routing_key="3")
        # A command that reaches the store but that its database refuses (a host longer than the column). Ingest
        # refuses such an alert with a 422 (below), so it is made by hand: the shape of an old or foreign producer.
        long_host = sequence("nagios", "poison-host-longer-than-255")[0]
        alert = Alert(
            id=str(uuid.uuid4()),
            source=Source.NAGIOS,
            dedup_key=f"nagios:{long_host['HOSTNAME']}",
            kind=Kind.PROBLEM,
            severity=Severity.CRITICAL,
            host=long_host["HOSTNAME"],
            title="Host is DOWN",
            received_at=datetime.now(UTC),
        )
        tickets = await channel.get_exchange(pipeline.topology.exchange(Stream.TICKETS))
        partition = partition_of(alert.dedup_key, pipeline.topology.partitions)
        body = COMMANDS.dump_json([TicketCommand.single(alert)])
        command = aio_pika.Message(
            body, content_type="application/json", message_id=alert.id, headers={SCHEMA_HEADER: SCHEMA_VERSION}
        )
        await tickets.publish(command, routing_key=str(partition))
    alert_id = alert.id
    async with aiohttp.ClientSession() as session:
        status, answer = await post(session, pipeline.url, "nagios", long_host)
    assert status == 422
    assert answer["detail"][0]["loc"] == ["host"]

    async def both_dead_lettered() -> bool:
        listed = await asyncio.to_thread(dead_letters_cli, pipeline, "list")
        return alert_id in listed.stdout and "hand-made-1" in listed.stdout

    await eventually(both_dead_lettered, 20, lambda: f"not dead-lettered\n{pipeline.logs()}")
    listed = (await asyncio.to_thread(dead_letters_cli, pipeline, "list")).stdout
    line = next(x for x in listed.splitlines() if x.startswith(alert_id))
    assert "\tstore\ttickets/" in line and "value too long" in line
    line = next(x for x in listed.splitlines() if x.startswith("hand-made-1"))
    assert "\tdedup\talerts/3\t" in line and "text/plain" in line
    assert metric(pipeline.dedup[0], "alertdesk_broker_dead_lettered_total") == 1
    assert metric(pipeline.store[0], "alertdesk_broker_dead_lettered_total") == 1

    # The fix: the operator widens the column and restarts the store workers (their prepared statements
    # still describe the old table), then replays that one dead letter.
    await query(pipeline.schema, "ALTER TABLE tickets ALTER COLUMN host TYPE varchar(1024)")
    pipeline.store[0].stop()
    pipeline.store[0] = await asyncio.to_thread(restart, pipeline.store[0])
    await wait_ready(pipeline.store[0])
    replayed = await asyncio.to_thread(dead_letters_cli, pipeline, "replay", "--id", alert_id)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr

    async def applied() -> bool:
        return await applied_count(pipeline.schema) == 1

    await eventually(applied, 20, lambda: f"replay not applied\n{pipeline.logs()}")
    async with aiohttp.ClientSession() as session:
        found = await all_tickets(session, pipeline.store[0].url)
    assert [(t["host"], t["occurrences"]) for t in found] == [(long_host["HOSTNAME"], 1)]
    left = (await asyncio.to_thread(dead_letters_cli, pipeline, "list")).stdout
    assert "hand-made-1" in left and alert_id not in left
    assert "1 dead letter(s)" in left


async def test_workers_do_not_start_on_a_topology_with_another_partition_count(pipeline: Pipeline) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        await declare(connection, pipeline.topology)  # what an 8-partition deployment left on the broker
    other = pipeline.process("dedup", ALERTDESK_PARTITIONS="16")
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "alertdesk.cli", "dedup"], env=other.env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "the broker has 8 " in proc.stderr and "ALERTDESK_PARTITIONS is 16" in proc.stderr
