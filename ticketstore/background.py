"""The store worker's background chores: escalation scan, notification outbox, flapping settle, pruning.

Each runs on its own period and survives a failing round (the database may be down: it waits for the next one),
so `alertdesk run` and `alertdesk store` keep deadlines and notifications moving without a separate process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter

from normalizers.schema import AlertdeskError
from ticketstore.notify import Notifier
from ticketstore.store import TicketStore

logger = logging.getLogger(__name__)


class EscalationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.escalations = Counter(
            "alertdesk_escalations_total", "Escalation steps fired, by level", ["level"], registry=registry
        )
        self.breaches = Counter(
            "alertdesk_sla_breaches_total",
            "SLA breaches, by kind and severity",
            ["kind", "severity"],
            registry=registry,
        )


class Background:
    def __init__(
        self,
        store: TicketStore,
        notifier: Notifier,
        metrics: EscalationMetrics,
        *,
        retention: timedelta,
        scan_every: float = 1.0,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._metrics = metrics
        self._retention = retention
        self._scan_every = scan_every
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        chores: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
            ("escalation", self._scan_every, self.escalate),
            ("notifications", self._scan_every, self._notifier.run_once),
            ("flapping", 30.0, self._store.settle_flapping),
            ("prune", 3600.0, lambda: self._store.prune_processed(self._retention)),
        ]
        self._tasks = [asyncio.create_task(_every(name, period, chore), name=name) for name, period, chore in chores]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def escalate(self) -> int:
        fired = await self._store.escalate_due()
        for notice, severity in fired:
            if notice.event == "escalated":
                self._metrics.escalations.labels(str(notice.level)).inc()
            elif notice.event == "sla_breached":
                self._metrics.breaches.labels(notice.tag, severity).inc()
        return len(fired)


async def _every(name: str, period: float, chore: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await chore()
        except (AlertdeskError, OSError) as exc:
            logger.warning("%s skipped this round: %s", name, exc)
        except Exception:
            logger.exception("%s failed this round", name)
        await asyncio.sleep(period)
