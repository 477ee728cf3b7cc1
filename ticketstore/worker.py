"""The store worker: a window of ticket-command messages from the partitions it holds → one transaction, then ack.

`TicketStore.apply_batch` skips alert ids it has already applied, in the same transaction, so a command
delivered twice (a redelivery after a crash, a dedup retry) changes nothing the second time; the ack follows the
commit. Database down (`Unavailable`): the window is retried in-process with backoff and nothing is acked, so the
prefetch fills and the worker stops taking messages — the backlog waits in RabbitMQ, no delivery is burnt on a
requeue — and drains once the database answers. The database up but unable to write (`NotWritable`: a full
disk) is the same wait, only calmer: `Writes` is told (logged once, gauge, /readyz) and the window is tried again
every `probe_interval` seconds, without a warning per retry. A command that can never be applied (or never
decoded) goes to the dead-letter exchange with its reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from pydantic import TypeAdapter

from dedup.rabbitmq.broker import REPEATS_HEADER
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.topology import Topology
from dedup.rabbitmq.window import Delivery, Unreadable, Window, dead_letter, decode_all, until_done
from normalizers.schema import TicketCommand
from ticketstore.db import NotWritable
from ticketstore.metrics import StoreMetrics
from ticketstore.store import Applied, TicketStore

STAGE = "store"
COMMANDS = TypeAdapter(list[TicketCommand])  # a tickets message: one window's commands for one partition


class Writes(Protocol):
    """Whether the store can write (`alertdesk.writable.Writability`)."""

    probe_interval: float

    def failed(self, cause: str) -> None: ...

    def succeeded(self) -> None: ...


class _CannotWrite(Exception):
    """`NotWritable` carried past `until_done`, which would retry it at once with a warning each time."""


class StoreStage:
    """The handler `PartitionWorker` calls with each window of the tickets stream."""

    def __init__(
        self,
        store: TicketStore,
        topology: Topology,
        store_metrics: StoreMetrics,
        metrics: BrokerMetrics,
        writes: Writes,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._writes = writes
        self._topology = topology
        self._store_metrics = store_metrics
        self._metrics = metrics
        self._now = now

    async def __call__(self, window: Window) -> None:
        decoded = decode_all(window, COMMANDS)
        applied: list[tuple[Delivery, TicketCommand, Applied]] = []

        async def apply(live: list[Delivery]) -> None:
            nonlocal applied
            pairs = [(d, c) for d in live if not isinstance(cs := decoded[id(d)], Unreadable) for c in cs]
            started = time.perf_counter()
            try:
                results = await self._store.apply_batch([c for _, c in pairs]) if pairs else []
            except NotWritable as exc:
                raise _CannotWrite(str(exc)) from exc
            if pairs:
                self._writes.succeeded()
                self._store_metrics.batch_seconds.observe(time.perf_counter() - started)
            applied = [(d, c, r) for (d, c), r in zip(pairs, results, strict=True)]

        while True:  # unacked meanwhile: the prefetch fills and the backlog waits in RabbitMQ
            try:
                done = await until_done(window, apply, self._metrics, "applying ticket commands")
                break
            except _CannotWrite as exc:
                self._writes.failed(str(exc))
                await asyncio.sleep(self._writes.probe_interval)
        if not done:
            return  # fenced: every delivery's channel died; they are redelivered to the partitions' next consumer
        self._record(applied, _repeats(done, decoded))
        undecodable = [(d, u.reason) for d in done if isinstance(u := decoded[id(d)], Unreadable)]
        unapplicable = [(d, c, r.dead_letter) for d, c, r in applied if r.dead_letter is not None]
        self._store_metrics.dead_letters.labels(STAGE).inc(len(undecodable))  # apply_batch's: counted by `record`

        async def reject(live: list[Delivery]) -> None:
            alive = {id(d) for d in live}
            for d, reason in undecodable:
                if id(d) in alive:
                    await dead_letter(window.sender, self._topology, d, reason, STAGE)
            for d, command, reason in unapplicable:
                if id(d) in alive:
                    body = COMMANDS.dump_json([command])  # only that command: the others of its message applied
                    await dead_letter(
                        window.sender, self._topology, d, reason, STAGE, body=body, message_id=command.alert.id
                    )

        if undecodable or unapplicable:
            await until_done(window, reject, self._metrics, "dead-lettering ticket commands")
            self._metrics.dead_lettered.inc(len(undecodable) + len(unapplicable))

    def _record(self, applied: list[tuple[Delivery, TicketCommand, Applied]], repeats: set[int]) -> None:
        committed_at = self._now()
        commands, results = [c for _, c, _ in applied], [r for _, _, r in applied]
        latencies = self._store_metrics.record(commands, results, committed_at, repeats)
        for seconds in latencies:  # received → applied is this stage's consumer lag too
            self._metrics.lag_seconds.observe(seconds)


def _repeats(done: list[Delivery], decoded: dict[int, list[TicketCommand] | Unreadable]) -> set[int]:
    """The `id()` of the commands that are repeats dedup held back: the first `x-alertdesk-repeats` of a message."""
    repeats: set[int] = set()
    for d in done:
        count = (d.message.headers or {}).get(REPEATS_HEADER)
        commands = decoded[id(d)]
        if isinstance(count, int) and not isinstance(commands, Unreadable):
            repeats.update(id(c) for c in commands[:count])
    return repeats
