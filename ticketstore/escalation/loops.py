"""The store worker's background chores: escalation scan, notification outbox, maintenance windows' ends,
flapping settle, pruning (alert ids; tickets past their retention, if set).

Each runs on its own period and survives a failing round (the database may be down: it waits for the next one),
so `alertdesk run` and `alertdesk store` keep deadlines and notifications moving without a separate process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge

from normalizers.schema import AlertdeskError, Severity
from ticketstore.escalation.notify import Notifier
from ticketstore.escalation.resume import Seen, resume_ended, silence_open
from ticketstore.escalation.scan import escalate_due
from ticketstore.retention import Retention
from ticketstore.store import TicketStore
from ticketstore.ticket import STATUSES

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
        self.windows = Gauge(
            "alertdesk_maintenance_windows_active", "Maintenance windows covering now", registry=registry
        )
        self.tickets = Gauge(
            "alertdesk_tickets", "Tickets by status and current severity", ["status", "severity"], registry=registry
        )
        # every series exists from the start, so increase() and dashboards see the first event after a restart
        for severity in Severity:
            self.breaches.labels("response", severity.value)
            self.breaches.labels("resolution", severity.value)
            for status in STATUSES:
                self.tickets.labels(status, severity.value)
        for level in range(1, 4):
            self.escalations.labels(str(level))


class Background:
    def __init__(
        self,
        store: TicketStore,
        notifier: Notifier,
        metrics: EscalationMetrics,
        *,
        retention: timedelta,
        ticket_retention: Retention | None = None,
        scan_every: float = 1.0,
        more: Sequence[tuple[str, float, Callable[[], Awaitable[object]]]] = (),
    ) -> None:
        """`more`: further chores (name, period in seconds, coroutine), e.g. the trackers' loop."""
        self._store = store
        self._notifier = notifier
        self._metrics = metrics
        self._retention = retention
        self._ticket_retention = ticket_retention
        self._scan_every = scan_every
        self._more = tuple(more)
        self._tasks: list[asyncio.Task[None]] = []
        self._windows_seen: Seen = set()  # windows whose already-open tickets this process has silenced

    def start(self) -> None:
        chores: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
            ("escalation", self._scan_every, self.escalate),
            ("maintenance", self._scan_every, self.resume),
            ("notifications", self._scan_every, self._notifier.run_once),
            ("flapping", 30.0, self._store.settle_flapping),
            ("prune", 3600.0, lambda: self._store.prune_processed(self._retention)),
            ("ticket counts", 15.0, self.count_tickets),
            *self._more,
        ]
        if self._ticket_retention is not None:
            chores.append(("ticket retention", 3600.0, self._ticket_retention.run_once))
        self._tasks = [asyncio.create_task(_every(name, period, chore), name=name) for name, period, chore in chores]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def escalate(self) -> int:
        fired = await escalate_due(self._store)
        for notice, severity in fired:
            if notice.event == "escalated":
                self._metrics.escalations.labels(str(notice.level)).inc()
            elif notice.event == "sla_breached":
                self._metrics.breaches.labels(notice.tag, severity).inc()
        return len(fired)

    async def resume(self) -> int:
        """Tickets whose maintenance window is over resume (their held `opened` goes to the outbox); tickets
        already open when a window starts are silenced too. Returns how many resumed."""
        round_ = await resume_ended(self._store)
        self._metrics.windows.set(round_.active_windows)
        await silence_open(self._store, self._windows_seen)
        return round_.resumed

    async def count_tickets(self) -> None:
        counts = await self._store.count_by_status()
        for status in STATUSES:
            for severity in Severity:
                self._metrics.tickets.labels(status, severity.value).set(counts.get((status, severity.value), 0))


async def _every(name: str, period: float, chore: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await chore()
        except (AlertdeskError, OSError) as exc:
            logger.warning("%s skipped this round: %s", name, exc)
        except Exception:
            logger.exception("%s failed this round", name)
        await asyncio.sleep(period)
