"""The store's chores at rest and when work comes: the escalation scan and the outbox sleep until their next due
time, a commit wakes them, and a deadline fires on time without polling. On SQLite and PostgreSQL, with a real
HTTP receiver for the notifications and a clock that moves with real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy import event

from dedup.fold import fold
from normalizers.schema import Kind
from tests.conftest import Clock
from tests.process import free_port
from tests.test_escalation import nagios, sat
from ticketstore import actions
from ticketstore.db import Engines
from ticketstore.escalation import outbox
from ticketstore.escalation.loops import Background, EscalationMetrics
from ticketstore.escalation.notify import Notifier, NotifyMetrics
from ticketstore.escalation.scan import next_due
from ticketstore.lifecycle import Lifecycle
from ticketstore.policy import Policy
from ticketstore.store import TicketStore


def policy(url: str, respond_within: str = "15m") -> Policy:
    return Policy.model_validate(
        yaml.safe_load(
            f"""
channels: {{hook: {{type: webhook, url: "{url}"}}}}
severities:
  critical:
    priority: P1
    respond_within: {respond_within}
    resolve_within: 4h
    notify: [hook]
    escalation: [{{after: 30m, group: oncall-l2, notify: [hook]}}]
"""
        )
    )


class Receiver:
    """A webhook endpoint on 127.0.0.1 that notes each notification's event and when it came."""

    def __init__(self) -> None:
        self.got: list[tuple[str, float]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(((await request.json())["event"], time.monotonic()))
        self.arrived.set()
        return web.json_response({}, status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield recv, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


def statements(engines: Engines) -> list[str]:
    """Every SQL statement the engines run from now on."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    targets = {id(e): e for e in (engines.write.sync_engine, engines.read.sync_engine, engines.sync_write) if e}
    for engine in targets.values():
        event.listen(engine, "before_cursor_execute", note)
    return seen


async def test_next_due_is_the_earliest_deadline_or_notification_still_to_come(engines: Engines, clock: Clock) -> None:
    store = TicketStore(engines, Lifecycle(policy("http://127.0.0.1:9/hook")), now=clock)
    assert await next_due(store) is None
    assert await outbox.next_due(engines) is None
    t0 = clock()
    await store.apply_batch(fold([nagios(clock, Kind.PROBLEM)]))
    assert await next_due(store) == t0 + timedelta(minutes=15)  # the response SLA, before the 30 m step
    assert await outbox.next_due(engines) == t0  # "opened", to send now
    claimed = await outbox.claim(engines, t0, limit=10, lease=timedelta(minutes=2))
    assert len(claimed) == 1
    assert await outbox.next_due(engines) == t0 + timedelta(minutes=2)  # if its sender dies, when the lease ends
    await store.act(1, actions.acknowledge("jeanne"))
    assert await next_due(store) == t0 + timedelta(hours=4)  # acknowledged: only the resolution SLA is left


async def test_at_rest_the_chores_sleep_a_commit_wakes_them_and_a_deadline_fires_on_time(
    engines: Engines, receiver: tuple[Receiver, str]
) -> None:
    recv, url = receiver
    started, t0 = time.monotonic(), sat(3)

    def clock() -> datetime:  # moves with real time
        return t0 + timedelta(seconds=time.monotonic() - started)

    rules = policy(url, respond_within="3s")
    store = TicketStore(engines, Lifecycle(rules), now=clock)
    registry = CollectorRegistry()
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(engines, rules, session, NotifyMetrics(registry), now=clock)
        chores = Background(store, notifier, EscalationMetrics(registry), retention=timedelta(days=7), scan_every=0.05)
        chores.start()
        try:
            await asyncio.sleep(0.3)  # the first rounds
            seen = statements(engines)
            await asyncio.sleep(1.5)
            idle = [s for s in seen if "tickets" in s or "notifications" in s]
            assert len(idle) <= 4, idle  # polling every 50 ms would have run ~60 queries

            sent = time.monotonic()
            await store.apply_batch(fold([nagios(clock, Kind.PROBLEM)]))
            await asyncio.wait_for(recv.arrived.wait(), 2)
            assert [e for e, _ in recv.got] == ["opened"]
            assert recv.got[0][1] - sent < 1.0  # woken by the commit, not by the 30 s look
            await asyncio.sleep(4)
        finally:
            await chores.stop()
    breached = [at for e, at in recv.got if e == "sla_breached"]
    assert len(breached) == 1
    assert 2.9 < breached[0] - sent < 4.0  # the 3 s response deadline, kept without polling
