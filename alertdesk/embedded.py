"""The embedded hand-off: ingest → fold → store without a broker, with group commit.

`publish` queues the alert and waits; one writer task takes everything queued (no timer: at low load a batch is
one alert, under load concurrent requests share one transaction), folds it, has the store commit it (in the
store writer process on SQLite, see `alertdesk.writer`), then wakes the waiters. So a 202 means the alert is
committed to the ticket store, and a crash can lose only unanswered requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from dedup import DedupMetrics, fold
from normalizers.schema import Alert, TicketCommand, Unavailable
from ticketstore.metrics import StoreMetrics
from ticketstore.store import Applied

logger = logging.getLogger(__name__)

_Pending = tuple[Alert, asyncio.Future[None]]


class BatchStore(Protocol):
    """`TicketStore` itself, or `StoreProcess` running it in a child process (SQLite)."""

    async def apply_batch(self, commands: Sequence[TicketCommand]) -> list[Applied]: ...


class EmbeddedPipeline:
    """Implements ingest's `Publisher`: `publish` returns once the alert is committed."""

    def __init__(
        self,
        store: BatchStore,
        store_metrics: StoreMetrics,
        dedup_metrics: DedupMetrics,
        *,
        now: Callable[[], datetime],
        timeout: float = 5.0,
        max_batch: int = 1024,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_commit`: told after each committed batch (the store's chores look for new due work)."""
        self._store = store
        self._store_metrics = store_metrics
        self._dedup_metrics = dedup_metrics
        self._now = now
        self._timeout = timeout
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: list[_Pending] = []
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
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((alert, future))
        self._wakeup.set()
        try:
            async with asyncio.timeout(self._timeout):
                await future  # on timeout the future is cancelled; the writer skips it
        except TimeoutError:
            raise Unavailable(f"the store did not commit within {self._timeout:g}s") from None

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        alerts = [alert for alert, _ in batch]
        commands = fold(alerts)
        self._dedup_metrics.record(alerts, commands)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Unavailable),
                wait=wait_random_exponential(multiplier=0.05, max=1.0),
                stop=stop_after_delay(self._timeout),
                reraise=True,
            ):
                with attempt:
                    results = await self._store.apply_batch(commands)
        except Exception as exc:
            if not isinstance(exc, Unavailable):
                logger.exception("store batch of %d alerts failed", len(alerts))
                exc = Unavailable("the store failed; retry later")
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved: a waiter that timed out must not log "never retrieved"
            return
        self._store_metrics.record(commands, results, self._now())
        self._on_commit()
        for _, future in batch:
            if not future.done():
                future.set_result(None)
