"""Whether the store can write: a full disk is logged once, shown on /readyz and the gauge, and heals by itself.

When a batch fails because the database cannot write its files (`NotWritable`: disk full, I/O error), retrying
at once helps nobody. So the store is marked not writable: the cause is logged at ERROR once per outage,
`alertdesk_store_writable` drops to 0 and `/readyz` says not ready. `alertdesk run` answers webhooks 503 at once,
except that one batch every `probe_interval` seconds is let through to try again; `alertdesk store` tries its
window again every `probe_interval` seconds, its messages waiting unacked in RabbitMQ. The first batch that
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
        meanwhile: str = "webhooks are refused with 503",
    ) -> None:
        """`meanwhile`: what happens to alerts while the store cannot write, for the log line."""
        self.probe_interval = probe_interval
        self._meanwhile = meanwhile
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
        self._next_probe = now + self.probe_interval
        return False

    def failed(self, cause: str) -> None:
        self._errors.inc()
        now = self._clock()
        self._next_probe = now + self.probe_interval
        if self.cause is None:
            self.cause, self._since = cause, now
            self._gauge.set(0)
            logger.error("the store cannot write, %s until it can: %s", self._meanwhile, cause)

    def succeeded(self) -> None:
        if self.cause is not None:
            logger.warning("the store writes again after %.0fs", self._clock() - self._since)
            self.cause = None
            self._gauge.set(1)

    async def ready(self) -> bool:
        """The /readyz check."""
        return self.cause is None
