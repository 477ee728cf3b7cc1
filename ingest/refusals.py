"""The log of refused webhooks, throttled: a sender misconfigured at 1,000 requests/s must not flood it.

The first refusal of a (source, reason) is logged at once, so a new misconfiguration shows up immediately; after
that, at most one line a minute per (source, reason), counting the refusals since the previous line. The exact
counts are in `alertdesk_webhook_rejections_total`; the log says that it happens and how often.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class _Since:
    logged_at: float
    unlogged: int = 0


class RefusalLog:
    """`clock` is monotonic seconds (injected by tests); keys are bounded: known sources, `unknown`, reasons."""

    def __init__(self, *, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._since: dict[tuple[str, str], _Since] = {}

    def refused(self, source: str, status: int, reason: str, detail: str = "", level: int = logging.INFO) -> None:
        """`detail`: the latest cause, said in the line (a 503's: "the database cannot write: …")."""
        now = self._clock()
        said = f"{reason}: {detail}" if detail else reason
        since = self._since.get((source, reason))
        extra = {"source": source, "status": status, "reason": reason}
        if since is None:
            self._since[(source, reason)] = _Since(now)
            logger.log(level, "refused %s webhook with %d (%s)", source, status, said, extra={**extra, "refusals": 1})
            return
        since.unlogged += 1
        elapsed = now - since.logged_at
        if elapsed < self._interval:
            return
        count, since.logged_at, since.unlogged = since.unlogged, now, 0
        logger.log(
            level,
            "refused %s webhook with %d (%s): %d in the last %.0f s",
            source,
            status,
            said,
            count,
            elapsed,
            extra={**extra, "refusals": count},
        )
