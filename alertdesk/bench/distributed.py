"""`alertdesk bench --distributed`: load ingest → RabbitMQ → dedup → store → PostgreSQL, end to end.

It starts `alertdesk ingest`, `dedup` and `store` on a fresh broker prefix and database schema (both removed
afterwards) with the shipped settings, drives them from this process (the load generator) with the alert mix of
`alertdesk bench`, waits until every alert answered 202 is applied, then prints: alerts/s end to end (first
request → last alert committed), p99 of the 202 (measured here) and of alert→ticket (the store's
`alertdesk_alert_to_ticket_seconds`, per command, from the webhook's arrival of its oldest alert; the repeats dedup
held back are apart, in `alertdesk_repeat_to_ticket_seconds`: their lag is the hold's), and the rows
written to the ticket and history tables (`pg_stat_user_tables`). It checks that every alert id answered 202 was
applied exactly once and that each key's tickets count exactly its accepted problems.

`--alerts N` is a storm: N problems over `--keys` keys, no recoveries, so it must end with one ticket per key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson

from alertdesk import runtime
from alertdesk.bench import baseline
from alertdesk.bench.loadgen import (
    Key,
    Ports,
    fleet,
    percentile,
    read_response,
    request,
    stagger,
    wait_answering,
)
from alertdesk.settings import Settings
from dedup.rabbitmq.topology import DEFAULT_PARTITIONS
from ticketstore.db import create_schema, drop_schema, libpq_url

DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
Children = dict[str, list[tuple[subprocess.Popen[bytes], int]]]  # stage → its processes and their ports


@dataclass
class Run:
    """What the load generator saw: latencies, statuses, accepted alert ids, per-key expectations."""

    storm: bool
    budget: int  # alerts still to send in a storm
    deadline: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)  # dedup_key → problems answered 202
    seq: int = 0

    def another(self) -> bool:
        if self.storm:
            self.budget -= 1
            return self.budget >= 0
        return time.perf_counter() < self.deadline


def stack_env(broker_url: str, database_url: str, prefix: str) -> dict[str, str]:
    """The environment of a benchmark's own stack: its broker prefix and database schema, both named `prefix`."""
    return {
        **os.environ,
        "ALERTDESK_BROKER_URL": broker_url,
        "ALERTDESK_BROKER_PREFIX": prefix,
        "ALERTDESK_DATABASE_URL": database_url,
        "ALERTDESK_DATABASE_SCHEMA": prefix,
        "ALERTDESK_LOG_LEVEL": "WARNING",
    }


def bench_distributed(args: argparse.Namespace) -> int:
    settings = Settings()  # the machine's ALERTDESK_* settings: its broker, its partition count
    broker_url = settings.broker_url or DEFAULT_BROKER
    if args.baseline:
        return runtime.run(lambda: baseline.broker(broker_url, args.duration, args.connections))
    database_url = args.database_url or DEFAULT_DATABASE
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="alertdesk-bench-") as tmp:
        env = stack_env(broker_url, database_url, prefix)
        runtime.run(lambda: create_schema(database_url, prefix))
        children: Children = {}
        ports = Ports()
        try:
            start_stages(children, args.stages, env, Path(tmp), ports)
            return runtime.run(lambda: _bench(args, children, database_url, prefix))
        finally:
            for stage_children in children.values():
                for child, _ in stage_children:
                    child.terminate()
            for stage_children in children.values():
                for child, _ in stage_children:
                    child.wait(timeout=30)
            runtime.run(lambda: _cleanup(broker_url, prefix, settings.partitions or DEFAULT_PARTITIONS, database_url))


async def _bench(args: argparse.Namespace, children: Children, db: str, schema: str) -> int:
    storm = args.alerts > 0
    keys = fleet(args.keys)
    run = Run(storm=storm, budget=args.alerts, deadline=time.perf_counter() + args.duration)
    conns = max(1, args.connections)
    ingest_ports = [port for _, port in children["ingest"]]
    pace = conns / args.rate if args.rate else 0.0
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(
                ingest_ports[c % len(ingest_ports)],
                keys[c::conns],
                run,
                pace,
                random.Random(c),
                stagger(pace, c, conns),
            )
            for c in range(conns)
            if keys[c::conns]
        )
    )
    load_seconds = time.perf_counter() - started
    store_ports = [port for _, port in children["store"]]
    await asyncio.to_thread(_wait_applied, store_ports, len(run.accepted))
    e2e_seconds = time.perf_counter() - started
    await asyncio.sleep(2.0)  # PostgreSQL publishes table statistics within a second of a transaction
    mode = f"storm of {args.alerts} problems" if storm else f"{args.duration:g}s of load"
    print(f"load            {mode} over {args.keys} keys, {conns} connections, rate {args.rate or 'max'}")
    print(f"requests        {sum(run.statuses.values())}; status codes {dict(sorted(run.statuses.items()))}")
    print(f"accepted        {len(run.accepted) / load_seconds:,.0f} alerts/s answered 202 during {load_seconds:.1f}s")
    print(
        f"end to end      {len(run.accepted) / e2e_seconds:,.0f} alerts/s (202 → ticket committed, {e2e_seconds:.1f}s)"
    )
    print(
        f"202 latency     p50 {percentile(run.latencies, 0.5) * 1e3:.1f} ms   p99 {percentile(run.latencies, 0.99) * 1e3:.1f} ms"
    )
    news = _histogram_p99(store_ports, "alertdesk_alert_to_ticket_seconds")
    repeats = _histogram_p99(store_ports, "alertdesk_repeat_to_ticket_seconds")
    print(f"alert→ticket    p99 {news * 1e3:.0f} ms (news: alerts that open or change a ticket; the target)")
    print(f"repeat→count    p99 {repeats * 1e3:.0f} ms (repeats dedup held back: an open ticket's count lag)")
    return await _check(run, db, schema)


async def _connection(
    port: int, keys: list[Key], run: Run, pace: float, rng: random.Random, offset: float = 0.0
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    next_at = time.perf_counter() + offset - pace  # the first request `offset` from now
    try:
        while run.another():
            if pace:
                next_at += pace
                if (delay := next_at - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
            key = rng.choice(keys)
            problem = key.next_is_problem(rng, max_episodes=1 if run.storm else None)
            run.seq += 1
            sent = time.perf_counter()
            writer.write(request("127.0.0.1", key, problem, run.seq))
            status, body = await read_response(reader)
            run.latencies.append(time.perf_counter() - sent)
            run.statuses[status] = run.statuses.get(status, 0) + 1
            if status == 202:
                answer = orjson.loads(body)
                run.accepted.append(answer["alert_id"])
                if problem:
                    run.problems[answer["dedup_key"]] = run.problems.get(answer["dedup_key"], 0) + 1
            key.answered(problem, status == 202)
    finally:
        writer.close()


async def _check(run: Run, database_url: str, schema: str) -> int:
    conn = await asyncpg.connect(libpq_url(database_url), server_settings={"search_path": schema})
    try:
        applied = [r[0] for r in await conn.fetch("SELECT alert_id FROM processed_alerts")]
        tickets = {
            r[0]: (r[1], r[2])
            for r in await conn.fetch("SELECT dedup_key, count(*), sum(occurrences) FROM tickets GROUP BY 1")
        }
        stats = {
            r[0]: (r[1], r[2])
            for r in await conn.fetch(
                "SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE schemaname = $1", schema
            )
        }
    finally:
        await conn.close()
    ticket_rows, history_rows = sum(stats.get("tickets", (0, 0))), sum(stats.get("ticket_history", (0, 0)))
    print(
        f"rows written    tickets {ticket_rows:,} (inserts + updates), history {history_rows:,}, together {ticket_rows + history_rows:,}"
    )
    print(
        f"tickets         {len(tickets)}; occurrences {sum(o for _, o in tickets.values()):,} for {sum(run.problems.values()):,} problems answered 202"
    )
    once = len(applied) == len(set(applied)) and set(applied) == set(run.accepted)
    counted = all(tickets.get(key, (0, 0))[1] == n for key, n in run.problems.items())
    single = not run.storm or all(n == 1 for n, _ in tickets.values())
    ok = once and counted and single
    print(
        "check           "
        + ("OK: every 202 applied exactly once, every key's occurrences match" if ok else "FAILED: ")
        + ("" if once else "alert ids applied ≠ alert ids answered 202; ")
        + ("" if counted else "occurrences differ from accepted problems; ")
        + ("" if single else "a key of the storm has more than one ticket")
    )
    return 0 if ok else 1


def start_stages(
    children: Children, stages: list[tuple[str, int]], env: dict[str, str], tmp: Path, ports: Ports
) -> None:
    """Start `stages`' processes into `children` (so the caller can stop what started if one fails), each
    logging to `tmp`, then wait until every one is ready; one that exits has its log's last lines quoted."""
    for stage, count in stages:
        children[stage] = []
        for index in range(count):
            worker = {"ALERTDESK_WORKER_INDEX": str(index), "ALERTDESK_WORKER_COUNT": str(count)}
            port = ports.take()
            with open(tmp / f"{stage}-{index}.log", "ab") as log:
                child = subprocess.Popen(
                    [sys.executable, "-m", "alertdesk.cli", stage],
                    env={**env, **worker, "ALERTDESK_PORT": str(port)},
                    stdout=log,
                    stderr=log,
                )
            children[stage].append((child, port))
    for stage, started in children.items():
        for index, (child, port) in enumerate(started):
            wait_answering(child, port, "/readyz", timeout=60, log=tmp / f"{stage}-{index}.log")


def _wait_applied(store_ports: list[int], accepted: int, stalled_after: float = 30.0) -> None:
    """Until the stores applied `accepted` alerts, or made no progress for `stalled_after` seconds (then the
    check below says what is missing)."""
    last, since = -1.0, time.monotonic()
    while (applied := sum(_metric(p, "alertdesk_alerts_applied_total") for p in store_ports)) < accepted:
        if applied != last:
            last, since = applied, time.monotonic()
        elif time.monotonic() - since > stalled_after:
            print(f"STALLED at {applied:.0f} of {accepted} alerts applied")
            return
        time.sleep(0.05)


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def _histogram_p99(ports: list[int], name: str) -> float:
    """The p99 of histogram `name` over the processes' /metrics (see `histogram_p99`)."""
    texts = []
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            texts.append(resp.read().decode())
    return histogram_p99(texts, name)


def histogram_p99(texts: list[str], name: str) -> float:
    """Prometheus' histogram_quantile(0.99) over the buckets of `name` summed across `texts` (linear within a
    bucket, so the figure is only as fine as the buckets around it)."""
    buckets: dict[float, float] = {}
    for text in texts:
        for le, count in re.findall(rf'^{re.escape(name)}_bucket{{le="([^"]+)"[^}}]*}} (\S+)$', text, re.M):
            buckets[float(le)] = buckets.get(float(le), 0.0) + float(count)
    bounds = sorted(buckets)
    if not bounds or not buckets[bounds[-1]]:
        return float("nan")
    rank, previous_bound, previous_count = 0.99 * buckets[bounds[-1]], 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(buckets[bound] - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, buckets[bound]
    return previous_bound


async def _cleanup(broker_url: str, prefix: str, partitions: int, database_url: str) -> None:
    import aio_pika

    from dedup.rabbitmq.topology import Topology, delete

    connection = await aio_pika.connect(broker_url)
    async with connection:
        await delete(connection, Topology(prefix, partitions))
    await drop_schema(database_url, prefix)
