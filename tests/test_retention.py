"""Ticket retention on both databases, with an injected clock: old ended tickets go with what points at them."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import func, insert, select

from dedup import fold
from normalizers.schema import Alert, Kind, Severity, Source
from tests.conftest import Clock
from tests.process import AlertdeskProcess
from ticketstore import tables as t
from ticketstore.actions import close
from ticketstore.api.queries import TicketQueries
from ticketstore.db import Engines, create_engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy
from ticketstore.retention import Retention
from ticketstore.store import TicketStore

KEEP = timedelta(days=7)


def alert(clock: Clock, host: str, kind: Kind, problem_id: str) -> Alert:
    ok = kind is Kind.RECOVERY
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.NAGIOS,
        dedup_key=f"nagios:{host}/DISK /",
        kind=kind,
        severity=None if ok else Severity.CRITICAL,
        episode_id=problem_id,
        host=host,
        service="DISK /",
        title=f"DISK / on {host} is {'OK' if ok else 'CRITICAL'}",
        description="" if ok else "DISK CRITICAL - free space: / 1843 MB (4.6% inode=71%):",
        source_refs={"problem_id": problem_id},
        received_at=clock(),
    )


async def counts(engines: Engines, ticket_ids: list[int]) -> dict[str, int]:
    """Rows of each table that belong to `ticket_ids`."""
    found = {}
    async with engines.read.connect() as conn:
        for table in (t.tickets, t.history, t.episodes, t.notifications):
            column = table.c.id if table is t.tickets else table.c.ticket_id
            query = select(func.count()).select_from(table).where(column.in_(ticket_ids))
            found[table.name] = (await conn.execute(query)).scalar_one()
    return found


async def test_old_resolved_and_closed_tickets_go_with_their_rows_the_rest_stays(
    engines: Engines, clock: Clock
) -> None:
    store = TicketStore(engines, Lifecycle(Policy()), now=clock)
    [resolved] = await store.apply_batch(fold([alert(clock, "web-01", Kind.PROBLEM, "1")]))
    await store.apply_batch(fold([alert(clock, "web-01", Kind.RECOVERY, "1")]))
    [closed] = await store.apply_batch(fold([alert(clock, "web-02", Kind.PROBLEM, "2")]))
    assert closed.ticket_id is not None and resolved.ticket_id is not None
    await store.act(closed.ticket_id, close("alice"))
    [still_open] = await store.apply_batch(fold([alert(clock, "web-03", Kind.PROBLEM, "3")]))
    async with engines.write.begin() as conn:  # a notification sent for the resolved ticket
        await conn.execute(
            insert(t.notifications).values(
                ticket_id=resolved.ticket_id,
                event="opened",
                channel="ops-hook",
                idempotency_key="INC-1:opened",
                payload="{}",
                status="sent",
                created_at=clock(),
                next_attempt_at=clock(),
            )
        )
    clock.advance(days=2)  # web-01 again, long after: a new ticket that points back at the resolved one
    [again] = await store.apply_batch(fold([alert(clock, "web-01", Kind.PROBLEM, "4")]))
    clock.advance(days=4)
    [recent] = await store.apply_batch(fold([alert(clock, "web-04", Kind.PROBLEM, "5")]))
    await store.apply_batch(fold([alert(clock, "web-04", Kind.RECOVERY, "5")]))
    expired = [resolved.ticket_id, closed.ticket_id]
    kept = [still_open.ticket_id, again.ticket_id, recent.ticket_id]
    assert all(isinstance(i, int) for i in kept)
    before = await counts(engines, expired)

    clock.advance(days=2)  # 8 days after the first two ended, 2 after the recent one
    pruned = await Retention(store, engines, KEEP, now=clock, batch=1).run_once()

    assert pruned.tickets == 2
    assert before["ticket_history"] >= 4 and before["notifications"] == 1 and before["ticket_episodes"] == 2
    assert await counts(engines, expired) == {
        "tickets": 0,
        "ticket_history": 0,
        "ticket_episodes": 0,
        "notifications": 0,
    }
    queries = TicketQueries(engines)
    assert [await queries.get(i) for i in expired] == [None, None]
    views = [await queries.get(i) for i in kept if i is not None]
    assert [v.status for v in views if v] == ["open", "open", "resolved"]
    assert all(v and v.history for v in views), "a kept ticket lost its history"
    async with engines.read.connect() as conn:
        previous = await conn.execute(select(t.tickets.c.previous_ticket_id).where(t.tickets.c.id == again.ticket_id))
        assert previous.scalar_one() is None
    # the key of a deleted ticket still works: a repeat lands on the open ticket, not a new one
    [repeat] = await store.apply_batch(fold([alert(clock, "web-01", Kind.PROBLEM, "4")]))
    assert repeat.ticket_id == again.ticket_id
    assert (await Retention(store, engines, KEEP, now=clock).run_once()).tickets == 0


async def test_5000_expired_tickets_go_100_a_short_transaction(engines: Engines, clock: Clock) -> None:
    """5,000 expired tickets, each with its history: deleted 100 a transaction, each transaction short."""
    store = TicketStore(engines, Lifecycle(Policy()), now=clock)
    hosts = [f"host-{n:05d}" for n in range(5000)]
    for start in range(0, len(hosts), 1000):
        chunk = hosts[start : start + 1000]
        await store.apply_batch(fold([alert(clock, h, Kind.PROBLEM, h) for h in chunk]))
        await store.apply_batch(fold([alert(clock, h, Kind.RECOVERY, h) for h in chunk]))
    clock.advance(days=8)

    started = time.perf_counter()
    pruned = await Retention(store, engines, KEEP, now=clock).run_once()
    elapsed = time.perf_counter() - started

    mean = pruned.writing_s / pruned.batches
    print(
        f"\n{engines.dialect}: {pruned.tickets} tickets in {elapsed:.2f}s, {pruned.batches} batches, "
        f"mean {mean * 1e3:.1f} ms, longest {pruned.longest_batch_s * 1e3:.1f} ms"
    )
    assert pruned.tickets == 5000
    assert mean < 0.05 and pruned.longest_batch_s < 0.25  # measured 12 and 54 ms on a busy 2-core machine
    assert await counts(engines, list(range(1, 5001))) == {
        "tickets": 0,
        "ticket_history": 0,
        "ticket_episodes": 0,
        "notifications": 0,
    }


async def test_alertdesk_run_deletes_expired_tickets_when_retention_is_set(tmp_path: Path, clock: Clock) -> None:
    """The chore runs at start and then hourly; without the setting nothing is deleted."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'alertdesk.db'}"
    engines = create_engines(url)
    try:
        await upgrade(engines.write)
        store = TicketStore(engines, Lifecycle(Policy()), now=clock)  # the clock says March 2026: long ago
        [old] = await store.apply_batch(fold([alert(clock, "web-01", Kind.PROBLEM, "1")]))
        await store.apply_batch(fold([alert(clock, "web-01", Kind.RECOVERY, "1")]))
        [active] = await store.apply_batch(fold([alert(clock, "web-02", Kind.PROBLEM, "2")]))
    finally:
        await engines.dispose()

    async def statuses(proc: AlertdeskProcess) -> list[int]:
        async with aiohttp.ClientSession() as session:
            found = []
            for ticket_id in (old.ticket_id, active.ticket_id):
                async with session.get(f"{proc.url}/api/tickets/{ticket_id}") as resp:
                    found.append(resp.status)
            return found

    keep = AlertdeskProcess(tmp_path, {"ALERTDESK_DATABASE_URL": url}).start()
    try:
        await asyncio.sleep(1.0)
        assert await statuses(keep) == [200, 200]
    finally:
        keep.stop()
    pruning = AlertdeskProcess(tmp_path, {"ALERTDESK_DATABASE_URL": url, "ALERTDESK_TICKET_RETENTION_DAYS": "30"})
    pruning.start()
    try:
        for _ in range(50):
            if (found := await statuses(pruning)) == [404, 200]:
                break
            await asyncio.sleep(0.2)
    finally:
        pruning.stop()
    assert found == [404, 200]
    assert "retention: deleted 1 tickets" in pruning.output()
