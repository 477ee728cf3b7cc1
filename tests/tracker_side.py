"""What the tracker tests share: an alert, alertdesk's store side with its trackers' loop, reads of the ticket, and
the inbound endpoint on a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from dedup.fold import fold
from normalizers.schema import Alert, Kind, Severity, Source
from tests.conftest import Clock
from tests.process import free_port
from ticketstore import actions
from ticketstore import tables as t
from ticketstore.db import Engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.policy import Policy
from ticketstore.store import TicketStore
from ticketstore.trackers.dispatch import TrackerDispatcher, TrackerMetrics, mirrors
from ticketstore.trackers.inbound import tracker_routes

INBOUND_TOKEN = "tracker-to-alertdesk-7d41c0"
TITLE = "MySQL: Disk /var & logs is almost full"
RUNBOOK = "https://wiki.example.net/runbooks/zabbix/db-paris-01/MySQL%3A%20Disk%20%2Fvar%20%26%20logs"


def problem(clock: Clock, host: str = "db-paris-01") -> Alert:
    return Alert(
        id=str(uuid.uuid4()),
        source=Source.ZABBIX,
        dedup_key=f"zabbix:{host}/disk",
        kind=Kind.PROBLEM,
        severity=Severity.CRITICAL,
        episode_id="8471302",
        host=host,
        service="MySQL: Disk /var & logs",
        title=TITLE,
        description="Free space on /var: 2.1 %",
        received_at=clock(),
    )


@dataclass
class Side:
    """alertdesk's store side: the store, the trackers' loop, its metrics."""

    store: TicketStore
    dispatcher: TrackerDispatcher
    registry: CollectorRegistry

    async def drain(self, rounds: int = 20) -> int:
        """Run the trackers' loop until nothing is due; how many events were attempted."""
        total = 0
        for _ in range(rounds):
            done = await self.dispatcher.run_once()
            if not done:
                return total
            total += done
        return total


async def same_problem_again(s: Side, clock: Clock) -> None:
    """Ticket 1 resolved by an operator, and two hours later the same problem again: the key's new ticket (2)."""
    await s.store.act(1, actions.resolve("maria.rossi"))
    await s.drain()
    clock.advance(hours=2)
    await s.store.apply_batch(fold([problem(clock).model_copy(update={"episode_id": "8471990"})]))
    await s.drain()


@contextlib.asynccontextmanager
async def side(engines: Engines, policy: Policy, clock: Clock, **kwargs: Any) -> AsyncIterator[Side]:
    registry = CollectorRegistry()
    async with aiohttp.ClientSession() as session:
        dispatcher = TrackerDispatcher(
            engines,
            mirrors(policy, session, {}, now=clock),
            TrackerMetrics(registry),
            now=clock,
            lease=timedelta(seconds=30),
            **kwargs,
        )
        yield Side(TicketStore(engines, Lifecycle(policy), now=clock), dispatcher, registry)


async def ticket(engines: Engines, ticket_id: int = 1) -> Any:
    async with engines.read.connect() as conn:
        return (await conn.execute(select(t.tickets).where(t.tickets.c.id == ticket_id))).one()


async def history(engines: Engines, *kinds: str, ticket_id: int = 1) -> list[tuple[str, str | None, str]]:
    h = t.history.c
    query = select(h.kind, h.actor, h.detail).where(h.ticket_id == ticket_id, h.kind.in_(kinds)).order_by(h.id)
    async with engines.read.connect() as conn:
        return [tuple(r) for r in await conn.execute(query)]  # type: ignore[misc]


async def taken_back(engines: Engines) -> tuple[tuple[Any, ...], list[tuple[str, str | None, str]]]:
    """What the tracker's events made of ticket 1: (status, acknowledged by, assignee, group), and its history of
    acknowledgement, assignment, comments and resolution."""
    row = await ticket(engines)
    state = (row.status, row.acknowledged_by, row.assignee, row.assigned_group)
    return state, await history(engines, "acknowledged", "assigned", "comment", "resolved")


async def tracker_rows(engines: Engines, name: str = "snow") -> Sequence[Any]:
    n = t.notifications.c
    query = select(n.event, n.status, n.attempts, n.next_attempt_at).where(n.channel == f"tracker:{name}")
    async with engines.read.connect() as conn:
        return (await conn.execute(query.order_by(n.id))).all()


@contextlib.asynccontextmanager
async def inbound_api(store: TicketStore, policy: Policy) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(tracker_routes(store, policy, {}))
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/api/trackers"
    finally:
        await server.close()


async def post(url: str, body: Any, token: str = INBOUND_TOKEN) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=json.dumps(body), headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json()


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s")


async def until_async(condition: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    for _ in range(int(within / 0.2)):
        if await condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within}s")
