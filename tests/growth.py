"""Database growth per million alerts, for sizing the disk: `python -m tests.growth --alerts 200000`.

The bench's alert mix (three sources, a new problem, repeats, one recovery in ten) goes through the real
normalizers and the real store into a SQLite file, in batches as `alertdesk run` folds them. Printed: bytes on
disk per alert and extrapolated to a million, total and without the processed alert ids. Those ids are kept
only `ALERTDESK_RETENTION_DAYS` (7), so at a steady rate they stop growing after a week; the tickets and their
history stay until ticket retention deletes them. The file is checkpointed and vacuumed before it is measured,
so the figure is the data's, not free pages'.

`--database-url postgresql+asyncpg://…` measures PostgreSQL instead, in a schema of its own (dropped after): the
tables with their indexes and TOAST (`pg_total_relation_size`) after `VACUUM FULL`, so again the data's, not the
dead row versions' that ticket updates leave until autovacuum reuses them (their size before is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alertdesk.bench import loadgen
from dedup import fold
from normalizers import normalize
from normalizers.schema import Alert
from ticketstore import db
from ticketstore.db import create_engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

BATCH = 500


async def fill(url: str, alerts: int, keys: int, seed: int = 7, schema: str | None = None) -> None:
    engines = create_engines(url, schema=schema)
    await upgrade(engines.write)
    clock = datetime(2026, 3, 1, tzinfo=UTC)
    store = TicketStore(engines, Lifecycle(Policy()), now=lambda: clock, cache=True)
    rng, fleet = random.Random(seed), loadgen.fleet(keys)
    try:
        for start in range(0, alerts, BATCH):
            batch: list[Alert] = []
            for _ in range(min(BATCH, alerts - start)):
                key = rng.choice(fleet)
                problem = key.next_is_problem(rng)
                clock += timedelta(seconds=1)
                alert = normalize(key.source, loadgen.body(key, problem), received_at=clock)
                assert isinstance(alert, Alert)
                key.answered(problem, accepted=True)
                batch.append(alert)
            await store.apply_batch(fold(batch))
    finally:
        await engines.dispose()


def measure(path: Path) -> tuple[int, int, dict[str, int]]:
    """(bytes on disk, bytes without processed ids, rows by table) after a vacuum, the WAL checkpointed."""
    db = sqlite3.connect(path, isolation_level=None)

    def size() -> int:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the vacuumed pages are in the WAL until then
        return path.stat().st_size

    try:
        total = size()
        rows = {
            name: db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # names from sqlite_master
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        db.execute("DELETE FROM processed_alerts")
        return total, size(), rows
    finally:
        db.close()


async def measure_postgres(url: str, schema: str) -> tuple[int, int, dict[str, int], int]:
    """(bytes of the tables, bytes without processed ids, rows by table, bytes before `VACUUM FULL`)."""
    import asyncpg  # PostgreSQL only

    conn = await asyncpg.connect(db.libpq_url(url), server_settings={"search_path": schema})

    async def sizes() -> dict[str, int]:
        found = await conn.fetch(
            "SELECT c.relname, pg_total_relation_size(c.oid) AS bytes FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
            schema,
        )
        return {r["relname"]: int(r["bytes"]) for r in found}

    try:
        before = sum((await sizes()).values())
        for name in await sizes():  # table by table: this schema's only, not the whole database's
            await conn.execute(f'VACUUM (FULL, ANALYZE) "{schema}"."{name}"')
        after = await sizes()
        rows = {name: int(await conn.fetchval(f'SELECT count(*) FROM "{name}"')) for name in after}
    finally:
        await conn.close()
    total = sum(after.values())
    return total, total - after["processed_alerts"], rows, before


async def on_postgres(url: str, alerts: int, keys: int) -> tuple[int, int, dict[str, int], int]:
    schema = f"growth_{uuid.uuid4().hex[:8]}"
    await db.create_schema(url, schema)
    try:
        await fill(url, alerts, keys, schema=schema)
        return await measure_postgres(url, schema)
    finally:
        await db.drop_schema(url, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=2_000, help="distinct problem sources in the fleet")
    parser.add_argument("--database-url", help="PostgreSQL (postgresql+asyncpg://…) instead of a SQLite file")
    args = parser.parse_args()
    before = None
    if args.database_url:
        total, without_ids, rows, before = asyncio.run(on_postgres(args.database_url, args.alerts, args.keys))
    else:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "alertdesk.db"
            asyncio.run(fill(f"sqlite+aiosqlite:///{path}", args.alerts, args.keys))
            total, without_ids, rows = measure(path)
    per_million = 1_000_000 / args.alerts
    print(f"alerts {args.alerts} keys {args.keys} rows {rows}")
    print(f"bytes per alert: {total / args.alerts:.0f} (without processed ids {without_ids / args.alerts:.0f})")
    print(
        f"per million alerts: {total * per_million / 2**20:.0f} MiB "
        f"(without processed ids {without_ids * per_million / 2**20:.0f} MiB)"
    )
    if before is not None:
        print(f"before VACUUM FULL: {before / args.alerts:.0f} bytes per alert, {before * per_million / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
