"""The embedded hand-off: ingest → fold → store without a broker, with group commit.

`publish` queues the alert and waits; one writer task takes everything queued (no timer: at low load a batch is
one alert, under load concurrent requests share one transaction), folds it, has the store commit it (in the
store writer process on SQLite, see `alertdesk.writer`), then wakes the waiters. So a 202 means the alert is
committed to the ticket store, and a crash can lose only unanswered requests.

Overload: at most `max_pending` alerts wait for the writer; beyond that `publish` refuses at once, so a sender
gets a fast 503 rather than a slow one. A request that times out withdraws its alert if the writer has not taken
it yet: its 503 then means "not applied". Only an alert in the batch being committed when the time ran out may be
applied after its 503 (counted as `in_flight`); the sender's retry with the same Idempotency-Key counts it once.
While the store cannot write (a full disk, `alertdesk.writable`), `publish` refuses at once as well.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from alertdesk.writable import Writability
from dedup import DedupMetrics, fold
from normalizers.schema import Alert, TicketCommand, Unavailable
from ticketstore.db import NotWritable
from ticketstore.metrics import StoreMetrics
from ticketstore.store import Applied

logger = logging.getLogger(__name__)

_Pending = tuple[asyncio.Future[None], Alert]


class BatchStore(Protocol):
    """`TicketStore` itself, or `StoreProcess` running it in a child process (SQLite)."""

    async def apply_batch(self, commands: Sequence[TicketCommand]) -> list[Applied]: ...


class HandoffMetrics:
    """Why `publish` answered 503: queue full, timed out (withdrawn, or in a commit in flight), store failed or full."""

    REASONS = ("full", "withdrawn", "in_flight", "store", "not_writable")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.unavailable = Counter(
            "alertdesk_handoff_unavailable_total",
            "Alerts refused with 503 by the embedded hand-off, by reason (in_flight: may still be applied)",
            ["reason"],
            registry=registry,
        )
        for reason in self.REASONS:
            self.unavailable.labels(reason)


class Full(Unavailable):
    """The hand-off queue is at its bound: refused at once, nothing queued."""


class EmbeddedPipeline:
    """Implements ingest's `Publisher`: `publish` returns once the alert is committed."""

    def __init__(
        self,
        store: BatchStore,
        store_metrics: StoreMetrics,
        dedup_metrics: DedupMetrics,
        handoff_metrics: HandoffMetrics,
        writability: Writability,
        *,
        now: Callable[[], datetime],
        timeout: float = 5.0,
        max_batch: int = 1024,
        max_pending: int = 2048,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_commit`: told after each committed batch (the store's chores look for new due work)."""
        self._store = store
        self._store_metrics = store_metrics
        self._dedup_metrics = dedup_metrics
        self._now = now
        self._timeout = timeout
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._handoff = handoff_metrics
        self._writability = writability
        self._on_commit = on_commit
        self._queue: dict[asyncio.Future[None], Alert] = {}  # insertion order is arrival order
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="embedded-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop. Called after the web server stopped taking requests."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def publish(self, alert: Alert) -> None:
        if self._closing or self._task is None or self._task.done():
            raise Unavailable("alertdesk is shutting down")
        if self._writability.refuse():
            self._handoff.unavailable.labels("not_writable").inc()
            raise Unavailable(f"{self._writability.cause}; retry later")
        if len(self._queue) >= self._max_pending:
            self._handoff.unavailable.labels("full").inc()
            raise Full(f"alertdesk is overloaded ({self._max_pending} alerts waiting for the store); retry later")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue[future] = alert
        self._wakeup.set()
        # a timer that fails the future, not `asyncio.timeout`: ~0.7 µs instead of ~3.3 µs, on every alert
        timer = loop.call_later(self._timeout, _expire, future)
        try:
            await future
        except TimeoutError:
            if self._queue.pop(future, None) is not None:  # the writer has not taken it: withdrawn
                self._handoff.unavailable.labels("withdrawn").inc()
                raise Unavailable(f"the store did not take the alert within {self._timeout:g}s; not applied") from None
            self._handoff.unavailable.labels("in_flight").inc()
            raise Unavailable(
                f"the store did not commit within {self._timeout:g}s; the alert may still be applied: "
                "retry with the same Idempotency-Key"
            ) from None
        finally:
            timer.cancel()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = list(itertools.islice(self._queue.items(), self._max_batch))
                for future, _ in batch:
                    del self._queue[future]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        alerts = [alert for _, alert in batch]
        commands = fold(alerts)
        self._dedup_metrics.record(alerts, commands)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Unavailable) & retry_if_not_exception_type(NotWritable),
                wait=wait_random_exponential(multiplier=0.05, max=1.0),
                stop=stop_after_delay(self._timeout),
                reraise=True,
            ):
                with attempt:
                    started = time.perf_counter()
                    results = await self._store.apply_batch(commands)
                    self._store_metrics.batch_seconds.observe(time.perf_counter() - started)
        except Exception as exc:
            if isinstance(exc, NotWritable):
                self._writability.failed(str(exc))
            elif not isinstance(exc, Unavailable):
                logger.exception("store batch of %d alerts failed", len(alerts))
                exc = Unavailable("the store failed; retry later")
            for future, _ in batch:
                if not future.done():
                    self._handoff.unavailable.labels("store").inc()
                    future.set_exception(exc)
                    future.exception()  # retrieved: a waiter that timed out must not log "never retrieved"
            return
        self._writability.succeeded()
        self._store_metrics.record(commands, results, self._now())
        self._on_commit()
        for future, _ in batch:
            if not future.done():
                future.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
