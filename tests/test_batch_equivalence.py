"""A batch must end as the same events one by one: the store's answer cannot depend on how commands were grouped.

Events share a store batch whenever they arrive together — a dedup window, the backlog drained after an outage,
concurrent requests in embedded mode — so any sequence of commands over a few keys, applied as one batch, as random
splits into batches, and one at a time, must give the same tickets, statuses, flags, counts and history kinds.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dedup.fold import fold
from normalizers.schema import Alert, Kind, Severity, Source, TicketCommand
from tests.conftest import PG_URL
from ticketstore import tables as t
from ticketstore.db import create_engines, create_schema, drop_schema
from ticketstore.lifecycle import Lifecycle
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

START = datetime(2026, 3, 14, 3, 0, tzinfo=UTC)
KEYS = ("web-01/DISK /", "db-02/Swap")
CYCLE = "cycle"  # a problem then its recovery: three of them within the hour make a key flap
STEPS: list[Kind | str] = [CYCLE] * 4 + [
    Kind.PROBLEM,
    Kind.RECOVERY,
    Kind.ACKNOWLEDGE,
    Kind.COMMENT,
    Kind.FLAPPING_START,
    Kind.FLAPPING_STOP,
    Kind.DOWNTIME_START,
    Kind.DOWNTIME_END,
]

Event = tuple[int, Kind, int | None, bool, int]  # key index, kind, problem id, state ok, minutes after the previous


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0, 0, 0, 1]),  # mostly one key: its cycles are what a batch can get wrong
                st.sampled_from(STEPS),
                st.sampled_from([None, 1, 2, 3]),
                st.booleans(),
                st.sampled_from([0, 0, 1, 2, 5, 40]),
            ),
            min_size=1,
            max_size=14,
        )
    )
    out: list[Event] = []
    for key, step, problem_id, state_ok, gap in steps:
        if step == CYCLE:
            out += [(key, Kind.PROBLEM, problem_id, state_ok, gap), (key, Kind.RECOVERY, problem_id, state_ok, 1)]
        else:
            assert isinstance(step, Kind)
            out.append((key, step, problem_id, state_ok, gap))
    return out


def commands(run: str, sequence: list[Event]) -> list[TicketCommand]:
    """One command per event, for this run's own keys (runs share the database, never a key or an alert id)."""
    at, out = START, []
    for key_index, kind, problem_id, state_ok, minutes in sequence:
        at += timedelta(minutes=minutes)
        host, _, service = KEYS[key_index].partition("/")
        ok = kind is Kind.RECOVERY or (kind is Kind.FLAPPING_STOP and state_ok)
        alert = Alert(
            id=str(uuid.uuid4()),
            source=Source.NAGIOS,
            dedup_key=f"nagios:{run}-{host}/{service}",
            kind=kind,
            severity=None if ok or kind is not Kind.PROBLEM else Severity.CRITICAL,
            episode_id=None if problem_id is None else f"{run}-{problem_id}",
            host=f"{run}-{host}",
            service=service,
            title=f"{service} on {host}",
            description="",
            actor="jdupont" if kind in (Kind.ACKNOWLEDGE, Kind.COMMENT) else None,
            comment="note" if kind is Kind.COMMENT else None,
            state_ok=state_ok if kind is Kind.FLAPPING_STOP else None,
            received_at=at,
        )
        out.extend(fold([alert]))
    return out


def outcome(rows: list[Any], history: list[Any], run: str) -> list[tuple[Any, ...]]:
    """Each key's tickets in order as a user compares them: state, flags, counts and what their history says."""
    kinds: dict[int, list[str]] = {}
    for h in history:
        kinds.setdefault(h.ticket_id, []).append(h.kind)
    return [
        (
            r.dedup_key.removeprefix(f"nagios:{run}-"),
            r.status,
            r.flapping,
            r.suppressed,
            r.occurrences,
            r.severity,
            r.acknowledged_by,
            r.previous_ticket_id is not None,
            tuple(kinds.get(r.id, [])),
        )
        for r in rows
    ]


class Bench:
    """One database, engines and event loop shared by every example; each run of an example uses keys of its own."""

    def __init__(self, url: str, schema: str | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.engines = create_engines(url, schema=schema)
        self.loop.run_until_complete(upgrade(self.engines.write))

    def close(self) -> None:
        self.loop.run_until_complete(self.engines.dispose())
        self.loop.close()

    def apply(self, run: str, batches: list[list[TicketCommand]]) -> list[tuple[Any, ...]]:
        return self.loop.run_until_complete(self._apply(run, batches))

    async def _apply(self, run: str, batches: list[list[TicketCommand]]) -> list[tuple[Any, ...]]:
        store = TicketStore(self.engines, Lifecycle(Policy()), now=lambda: START, cache=True)
        for batch in batches:
            await store.apply_batch(batch)
        async with self.engines.read.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.tickets).where(t.tickets.c.dedup_key.like(f"nagios:{run}-%")).order_by(t.tickets.c.id)
                )
            ).all()
            history = (
                await conn.execute(
                    select(t.history.c.ticket_id, t.history.c.kind)
                    .where(t.history.c.ticket_id.in_([r.id for r in rows]))
                    .order_by(t.history.c.id)
                )
            ).all()
        return sorted(outcome(list(rows), list(history), run), key=lambda x: x[0])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    if request.param == "sqlite":
        bench = Bench(f"sqlite+aiosqlite:///{tmp_path / 'alertdesk.db'}", None)
        yield bench
        bench.close()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(create_schema(PG_URL, schema))
    bench = Bench(PG_URL, schema)
    try:
        yield bench
    finally:
        bench.close()
        asyncio.run(drop_schema(PG_URL, schema))


def split(items: list[TicketCommand], cuts: list[int]) -> list[list[TicketCommand]]:
    bounds = sorted({c % (len(items) + 1) for c in cuts} | {0, len(items)})
    return [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=events(), cuts=st.lists(st.integers(0, 28), max_size=12))
def test_one_batch_random_batches_and_one_by_one_end_the_same(
    bench: Bench, sequence: list[Event], cuts: list[int]
) -> None:
    one_by_one = bench.apply(run := uuid.uuid4().hex[:8], [[c] for c in commands(run, sequence)])
    together = bench.apply(run := uuid.uuid4().hex[:8], [commands(run, sequence)])
    assert together == one_by_one
    batches = bench.apply(run := uuid.uuid4().hex[:8], split(commands(run, sequence), cuts))
    assert batches == one_by_one


def test_four_problem_recovery_cycles_in_one_batch_flap_as_they_do_one_by_one(bench: Bench) -> None:
    """Found by a user in distributed mode: cycles posted back to back opened a ticket each."""
    sequence: list[Event] = [(1, kind, None, False, 0) for _ in range(4) for kind in (Kind.PROBLEM, Kind.RECOVERY)]

    one_by_one = bench.apply(run := uuid.uuid4().hex[:8], [[c] for c in commands(run, sequence)])
    assert [(x[1], x[2]) for x in one_by_one] == [("resolved", False), ("resolved", False), ("open", True)]
    for cuts in ([], [3, 6], [5], [2, 4, 6]):
        run = uuid.uuid4().hex[:8]
        assert bench.apply(run, split(commands(run, sequence), cuts)) == one_by_one
