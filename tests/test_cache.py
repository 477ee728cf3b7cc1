"""The SQLite writer's ticket cache never makes a batch act on a ticket that changed in the database.

The lifecycle and escalation tests run with the cache on, as `alertdesk run` does; these tests aim at the ways a
cached ticket could go stale: another connection writes, the store writes outside a batch, a batch fails half-way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from normalizers.schema import Kind
from tests.conftest import Clock
from tests.test_lifecycle import Desk, nagios
from ticketstore import rows
from ticketstore.actions import resolve
from ticketstore.cache import TicketCache
from ticketstore.db import create_engines
from ticketstore.lifecycle import KeyState, Lifecycle
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy
from ticketstore.store import TicketStore
from ticketstore.ticket import TicketRow


@pytest.fixture
async def cached(tmp_path: Path, clock: Clock) -> AsyncIterator[Desk]:
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'alertdesk.db'}")
    await upgrade(engines.write)
    yield Desk(TicketStore(engines, Lifecycle(Policy()), now=clock, cache=True), engines)
    await engines.dispose()


async def test_repeats_count_on_the_cached_ticket(cached: Desk, clock: Clock) -> None:
    for _ in range(3):
        await cached.send(nagios(clock, Kind.PROBLEM))
        clock.advance(seconds=30)

    ticket = await cached.ticket()
    assert (ticket["occurrences"], ticket["status"]) == (3, "open")


async def test_a_change_by_another_connection_is_seen_by_the_next_batch(
    cached: Desk, clock: Clock, tmp_path: Path
) -> None:
    await cached.send(nagios(clock, Kind.PROBLEM))
    with sqlite3.connect(tmp_path / "alertdesk.db") as other:  # e.g. a second process, or an operator's SQL
        other.execute("UPDATE tickets SET occurrences = 10, assignee = 'mlopez'")

    await cached.send(nagios(clock, Kind.PROBLEM))

    ticket = await cached.ticket()
    assert (ticket["occurrences"], ticket["assignee"]) == (11, "mlopez")


async def test_an_operator_action_through_the_store_is_seen_by_the_next_batch(cached: Desk, clock: Clock) -> None:
    [applied] = await cached.send(nagios(clock, Kind.PROBLEM))
    assert applied.ticket_id is not None
    await cached.store.act(applied.ticket_id, resolve("mlopez"))
    clock.advance(hours=2)  # past the reopen window: a new problem is a new ticket

    [again] = await cached.send(nagios(clock, Kind.PROBLEM, problem_id="48999"))

    assert again.opened and again.ticket_id != applied.ticket_id
    statuses = [(r["id"], r["status"], r["occurrences"]) for r in await cached.tickets()]
    assert statuses == [(applied.ticket_id, "resolved", 1), (again.ticket_id, "open", 1)]


async def test_a_failed_batch_leaves_nothing_of_itself_in_the_cache(
    cached: Desk, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cached.send(nagios(clock, Kind.PROBLEM))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(rows, "write", broken)
        with pytest.raises(RuntimeError):
            await cached.send(nagios(clock, Kind.PROBLEM))  # counted in memory, never committed
    await cached.send(nagios(clock, Kind.PROBLEM))

    assert (await cached.ticket())["occurrences"] == 2


def _ticket(key: str, ticket_id: int, clock: Clock) -> TicketRow:
    now = clock()
    return TicketRow(key, "nagios", "t", "h", "critical", "critical", "P1", "open", now, now, id=ticket_id)


def test_the_cache_keeps_the_most_recently_used_keys(clock: Clock) -> None:
    cache = TicketCache(size=2)
    cache.keep({f"k{i}": KeyState(latest=_ticket(f"k{i}", i, clock)) for i in range(2)})
    assert cache.take("k0", []) is not None  # k0 used: k1 is now the oldest

    cache.keep({"k2": KeyState(latest=_ticket("k2", 2, clock))})

    assert [cache.take(k, []) is not None for k in ("k0", "k1", "k2")] == [True, False, True]


def test_an_episode_not_seen_on_the_cached_ticket_asks_the_database(clock: Clock) -> None:
    ticket = _ticket("k", 1, clock)
    cache = TicketCache()
    cache.keep({"k": KeyState(latest=ticket, episodes={"e1": ticket})})

    hit = cache.take("k", ["e1"])
    assert hit is not None and hit.latest is ticket and hit.episodes == {"e1": ticket}
    assert cache.take("k", ["e1", "e2"]) is None  # e2 may belong to an older ticket of the key


def test_a_key_whose_ticket_is_no_longer_active_leaves_the_cache(clock: Clock) -> None:
    ticket = _ticket("k", 1, clock)
    cache = TicketCache()
    cache.keep({"k": KeyState(latest=ticket)})
    ticket.status = "resolved"

    cache.keep({"k": KeyState(latest=ticket)})

    assert cache.take("k", []) is None
