"""The console's page speed with many tickets: fill a database, serve the console, time its pages, show EXPLAIN.

    .venv/bin/python -m tests.console_bench --tickets 100000                       # a temporary SQLite file
    .venv/bin/python -m tests.console_bench --tickets 100000 --database-url postgresql+asyncpg://postgres@127.0.0.1/postgres

Tickets are written straight into the tables (a realistic mix: 60 days, 5 severities, 2,000 hosts, a fifth of them
still active, one to three history entries each), not through the lifecycle: this measures reading, not writing.
The console runs in this process on a real port; requests go one at a time through aiohttp's client, so each time
is the whole round trip of one page. A benchmark, not a test: it prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import insert, text

from tests.process import free_port
from ticketstore import tables as t
from ticketstore.accounts import Accounts
from ticketstore.console.auth import ConsoleConfig
from ticketstore.console.dashboard import Dashboard
from ticketstore.console.pages import console
from ticketstore.db import Engines, create_engines, create_schema, drop_schema
from ticketstore.lifecycle import Lifecycle
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

PASSWORD = "benchmark password"
SEVERITIES = ("critical", "major", "minor", "warning", "info")
GROUPS = ("service-desk", "network", "storage", "database", "web")


def ticket_rows(count: int, now: datetime, rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tickets, history = [], []
    for i in range(1, count + 1):
        first = now - timedelta(seconds=rng.uniform(0, 60 * 86400))
        severity = rng.choice(SEVERITIES)
        active = i > count * 0.8
        acked = first + timedelta(minutes=rng.uniform(1, 60)) if rng.random() < 0.7 else None
        resolved = None if active else first + timedelta(minutes=rng.uniform(5, 600))
        host = f"host-{i % 2000:04d}"
        tickets.append(
            {
                "id": i,
                "dedup_key": f"nagios:{host}/check-{i % 13}-{i}",
                "source": rng.choice(("nagios", "zabbix", "solarwinds")),
                "title": f"check-{i % 13} on {host} is {severity.upper()}",
                "description": "synthetic",
                "host": host,
                "service": f"check-{i % 13}",
                "severity": severity,
                "peak_severity": severity,
                "priority": f"P{SEVERITIES.index(severity) + 1}",
                "status": rng.choice(("open", "in_progress", "waiting"))
                if active
                else rng.choice(("resolved", "closed")),
                "suppressed": False,
                "flapping": False,
                "occurrences": rng.randint(1, 50),
                "first_seen": first,
                "last_seen": first + timedelta(minutes=rng.uniform(0, 120)),
                "acknowledged_by": "alice" if acked else None,
                "acknowledged_at": acked,
                "resolved_at": resolved,
                "assigned_group": rng.choice(GROUPS),
                "escalation_level": 0,
                "respond_by": first + timedelta(minutes=15),
                "resolve_by": first + timedelta(hours=4),
                "response_breached": rng.random() < 0.1,
                "resolution_breached": rng.random() < 0.1,
                "paused_seconds": 0.0,
                "source_refs": {},
                "tags": {},
            }
        )
        history.append({"ticket_id": i, "at": first, "kind": "opened", "actor": "nagios", "detail": ""})
        if acked:
            history.append({"ticket_id": i, "at": acked, "kind": "acknowledged", "actor": "alice", "detail": ""})
        if resolved:
            history.append({"ticket_id": i, "at": resolved, "kind": "resolved", "actor": "nagios", "detail": ""})
    return tickets, history


async def fill(engines: Engines, count: int, now: datetime) -> None:
    tickets, history = ticket_rows(count, now, random.Random(7))

    def write(conn: Any) -> None:
        for table, rows in ((t.tickets, tickets), (t.history, history)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[start : start + 5000])
        if engines.dialect == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), :n)"), {"n": count})
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))

    await engines.transact(write)


async def timed(session: aiohttp.ClientSession, url: str, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        async with session.get(url) as answer:
            await answer.read()
            assert answer.status == 200, url
        times.append((time.perf_counter() - started) * 1000)
    return times


def p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98] if len(times) >= 2 else times[0]


async def explain(engines: Engines) -> None:
    sql = {
        "queue, first page": "SELECT * FROM tickets ORDER BY id DESC LIMIT 51",
        "queue, status=open&severity=critical": "SELECT * FROM tickets WHERE status IN ('open') "
        "AND severity IN ('critical') ORDER BY id DESC LIMIT 51",
        "ticket": "SELECT * FROM tickets WHERE id = 80001",
        "ticket history": "SELECT at, kind, actor, detail FROM ticket_history WHERE ticket_id = 80001 ORDER BY id",
        "changes cursor": "SELECT max(last_seen) FROM tickets",
        "dashboard, open by severity": "SELECT severity, count(*) FROM tickets "
        "WHERE status IN ('open', 'in_progress', 'waiting') GROUP BY severity",
        "/api/stats, counts": "SELECT status, severity, count(*) FROM tickets GROUP BY status, severity",
        "/api/stats, means": "SELECT min(first_seen), count(acknowledged_at), count(resolved_at), "
        "count(CASE WHEN respond_by IS NOT NULL OR resolve_by IS NOT NULL THEN 1 END), "
        "count(CASE WHEN response_breached OR resolution_breached THEN 1 END) FROM tickets",
    }
    prefix = "EXPLAIN QUERY PLAN " if engines.dialect == "sqlite" else "EXPLAIN "
    async with engines.read.connect() as conn:
        statements = Dashboard(engines).statements(datetime.now(UTC) - timedelta(days=30))
        for name, statement in statements.items():  # the dashboard's own queries, as it sends them
            compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            sql[f"dashboard 30 days, {name}"] = str(compiled)
        for name, query in sql.items():
            plan = (await conn.exec_driver_sql(prefix + query)).all()
            lines = [str(row[-1]) for row in plan]
            print(f"  {name}: " + " | ".join(line.strip() for line in lines))


async def bench(url: str, schema: str | None, count: int, requests: int) -> None:
    engines = create_engines(url, schema=schema)
    await upgrade(engines.write)
    now = datetime.now(UTC)
    started = time.perf_counter()
    await fill(engines, count, now)
    print(f"{engines.dialect}: {count} tickets written in {time.perf_counter() - started:.1f} s")
    store = TicketStore(engines, Lifecycle(Policy()), now=lambda: datetime.now(UTC))
    accounts = Accounts(engines, now=lambda: datetime.now(UTC))
    await accounts.add("alice", PASSWORD, "operator")
    token, _ = await accounts.session_for("alice", "operator")
    app = web.Application()
    console(app, store, engines, accounts, ConsoleConfig())
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    pages = {
        "queue, first page": "/tickets",
        "queue, filtered (status=open, severity=critical)": "/tickets?status=open&severity=critical",
        "queue, most urgent": "/tickets?sort=urgent&status=open",
        "ticket page": f"/tickets/{int(count * 0.9)}",
        "changes poll": "/tickets/changes",
        "dashboard, 30 days": "/dashboard",
    }
    try:
        async with aiohttp.ClientSession(cookies={"alertdesk_session": token}) as session:
            for name, path in pages.items():
                n = max(requests // 10, 5) if "dashboard" in name else requests
                await timed(session, base + path, 3)  # warm the caches
                times = await timed(session, base + path, n)
                print(
                    f"  {name:<50} p50 {statistics.median(times):7.1f} ms   p99 {p99(times):7.1f} ms   ({n} requests)"
                )
        await explain(engines)
    finally:
        await runner.cleanup()
        await engines.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per page (the dashboard: a tenth)")
    parser.add_argument("--database-url", help="PostgreSQL URL (a schema of its own is made and dropped)")
    args = parser.parse_args()
    if args.database_url:
        schema = f"bench_{uuid.uuid4().hex[:10]}"

        async def on_postgres() -> None:
            await create_schema(args.database_url, schema)
            try:
                await bench(args.database_url, schema, args.tickets, args.requests)
            finally:
                await drop_schema(args.database_url, schema)

        asyncio.run(on_postgres())
        return
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(bench(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}", None, args.tickets, args.requests))


if __name__ == "__main__":
    main()
