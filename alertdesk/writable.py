"""Whether the embedded store can write: a full disk refuses alerts at once, is logged once, and heals by itself.

When a batch fails because the database cannot write its files (`NotWritable`: disk full, I/O error), waiting
the publish timeout for each webhook helps nobody. So the store is marked not writable: the cause is logged at
ERROR once per outage, `alertdesk_store_writable` drops to 0, `/readyz` says not ready, and webhooks get 503 at
once, except that one batch every `probe_interval` seconds is let through to try again. The first batch that
commits ends the outage (logged, gauge back to 1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

logger = logging.getLogger(__name__)


class Writability:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        probe_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe_interval = probe_interval
        self._clock = clock
        self.cause: str | None = None  # None: writable
        self._since = 0.0
        self._next_probe = 0.0
        self._gauge = Gauge(
            "alertdesk_store_writable",
            "1 while the store commits, 0 while it cannot write (disk full, I/O error)",
            registry=registry,
        )
        self._gauge.set(1)
        self._errors = Counter(
            "alertdesk_store_write_errors_total",
            "Store batches that failed because the database could not write its files",
            registry=registry,
        )

    def refuse(self) -> bool:
        """True while not writable and no probe is due; a due probe is granted once per interval."""
        if self.cause is None:
            return False
        now = self._clock()
        if now < self._next_probe:
            return True
        self._next_probe = now + self._probe_interval
        return False

    def failed(self, cause: str) -> None:
        self._errors.inc()
        now = self._clock()
        self._next_probe = now + self._probe_interval
        if self.cause is None:
            self.cause, self._since = cause, now
            self._gauge.set(0)
            logger.error("the store cannot write, webhooks are refused with 503 until it can: %s", cause)

    def succeeded(self) -> None:
        if self.cause is not None:
            logger.warning("the store writes again after %.0fs; accepting alerts", self._clock() - self._since)
            self.cause = None
            self._gauge.set(1)

    async def ready(self) -> bool:
        """The /readyz check."""
        return self.cause is None
