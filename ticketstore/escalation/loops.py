"""The store worker's background chores: escalation scan, notification outbox, maintenance windows' ends,
flapping settle, pruning (alert ids; tickets past their retention, if set).

Each survives a failing round (the database may be down: it waits for the next one), so `alertdesk run` and
`alertdesk store` keep deadlines and notifications moving without a separate process. The escalation scan and the
outbox sleep until their next due time (one MIN query), wake early when this process's store commits something
(`TicketStore.commits`), at most once per `scan_every`, and look anyway every `look_every` seconds for what other
processes wrote; the other chores run on a fixed period. An idle store then costs almost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge

from normalizers.schema import AlertdeskError, Severity
from ticketstore.escalation.notify import Notifier
from ticketstore.escalation.resume import Seen, next_window_change, resume_ended, silence_open
from ticketstore.escalation.scan import escalate_due, next_due
from ticketstore.retention import Retention
from ticketstore.store import TicketStore
from ticketstore.ticket import STATUSES
from ticketstore.windows import stamp

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
        look_every: float = 30.0,
    ) -> None:
        """`more`: further chores (name, period in seconds, coroutine), e.g. the trackers' loop."""
        self._store = store
        self._notifier = notifier
        self._metrics = metrics
        self._retention = retention
        self._ticket_retention = ticket_retention
        self._scan_every = scan_every
        self._more = tuple(more)
        self._look_every = look_every
        self._tasks: list[asyncio.Task[None]] = []
        self._windows_seen: Seen = set()
        self._windows_stamp: tuple[object, ...] | None = (
            None  # windows whose already-open tickets this process has silenced
        )

    def start(self) -> None:
        due: list[tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[datetime | None]]]] = [
            ("escalation", self.escalate, lambda: next_due(self._store)),
            ("notifications", self._notifier.run_once, self._notifier.next_due),
            ("maintenance", self.resume, lambda: next_window_change(self._store)),
        ]
        self._tasks = [
            asyncio.create_task(self._when_due(name, chore, when, self._store.commits.listen()), name=name)
            for name, chore, when in due
        ]
        chores: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
            ("flapping", 30.0, self._store.settle_flapping),
            ("prune", 3600.0, lambda: self._store.prune_processed(self._retention)),
            ("ticket counts", 15.0, self.count_tickets),
            ("maintenance changes", 2.0, self.watch_windows),
            *self._more,
        ]
        if self._ticket_retention is not None:
            chores.append(("ticket retention", 3600.0, self._ticket_retention.run_once))
        self._tasks += [asyncio.create_task(_every(name, period, chore), name=name) for name, period, chore in chores]

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

    async def watch_windows(self) -> None:
        """A window added or ended by another process (the CLI, another store) wakes the maintenance chore."""
        seen = await self._store.read(stamp)
        if self._windows_stamp is not None and seen != self._windows_stamp:
            self._store.commits.notify()
        self._windows_stamp = seen

    async def count_tickets(self) -> None:
        counts = await self._store.count_by_status()
        for status in STATUSES:
            for severity in Severity:
                self._metrics.tickets.labels(status, severity.value).set(counts.get((status, severity.value), 0))

    async def _when_due(
        self,
        name: str,
        chore: Callable[[], Awaitable[object]],
        when: Callable[[], Awaitable[datetime | None]],
        woken: asyncio.Event,
    ) -> None:
        """Run `chore`, then sleep until `when` says, a commit wakes us, or `look_every` passed."""
        loop = asyncio.get_running_loop()
        while True:
            ran = loop.time()
            done = await _round(name, chore) is not FAILED
            woken.clear()  # what was committed so far, `when` sees
            due = await _round(f"{name} (next due time)", when) if done else FAILED
            wait = self._scan_every if due is FAILED else self._look_every  # a failed round: try again soon
            if isinstance(due, datetime):
                wait = min(max((due - self._store.now()).total_seconds(), 0.0), wait)
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancellation
                async with asyncio.timeout(max(wait, self._scan_every - (loop.time() - ran))):
                    await woken.wait()
            await asyncio.sleep(max(self._scan_every - (loop.time() - ran), 0.0))


FAILED = object()  # what `_round` returns when the chore raised


async def _round(name: str, chore: Callable[[], Awaitable[object]]) -> object:
    try:
        return await chore()
    except (AlertdeskError, OSError) as exc:
        logger.warning("%s skipped this round: %s", name, exc)
    except Exception:
        logger.exception("%s failed this round", name)
    return FAILED


async def _every(name: str, period: float, chore: Callable[[], Awaitable[object]]) -> None:
    while True:
        await _round(name, chore)
        await asyncio.sleep(period)
