"""Which partition a key lands on, which partitions a worker owns, and how a standby takes them over.

On RabbitMQ 3.10 single active consumer gives failover, not balance: the first consumer of a queue keeps it. So
partitions are assigned explicitly: worker `i` of `n` owns the partitions `p` with `p % n == i` and subscribes to
them at once. It is also the standby of its neighbour `(i + 1) % n`: every few seconds it checks whether that
neighbour is present (its presence queue, exclusive to its connection, exists) and
- neighbour absent and one of its partitions without a consumer → subscribe to it (takeover);
- neighbour present and we hold one of its partitions → let go of it (handback), so the owner becomes active.

The neighbour's presence is read from its presence queue rather than from `consumer_count`: on 3.10 a quorum
queue with single active consumer reports only the active consumer, so a returning owner waiting behind the
standby is invisible there. Single active consumer stays on every queue, so two workers never take messages
from one partition at the same time, whatever the timing.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from normalizers.schema import AlertdeskError

logger = logging.getLogger(__name__)


def partition_of(dedup_key: str, partitions: int) -> int:
    """A stable partition for a key: every process, every restart, every Python build agrees."""
    return zlib.crc32(dedup_key.encode()) % partitions


class BadAssignment(AlertdeskError):
    """The worker index/count do not make sense together."""


@dataclass(frozen=True)
class Assignment:
    """Worker `index` of `count` over `partitions` partition queues."""

    index: int
    count: int
    partitions: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise BadAssignment(
                f"worker index {self.index} is outside 0..{self.count - 1} "
                f"(ALERTDESK_WORKER_INDEX must be below ALERTDESK_WORKER_COUNT)"
            )
        if self.partitions < 1:
            raise BadAssignment("there must be at least one partition")
        if self.count > self.partitions:
            logger.warning(
                "%d workers for %d partitions: workers %d.. own nothing and only stand by",
                self.count,
                self.partitions,
                self.partitions,
            )

    def owned_by(self, index: int) -> tuple[int, ...]:
        return tuple(p for p in range(self.partitions) if p % self.count == index)

    @property
    def owned(self) -> tuple[int, ...]:
        return self.owned_by(self.index)

    @property
    def neighbour(self) -> int | None:
        """The worker this one stands by for; None when it is alone."""
        return (self.index + 1) % self.count if self.count > 1 else None

    @property
    def standby(self) -> tuple[int, ...]:
        return () if self.neighbour is None else self.owned_by(self.neighbour)


@dataclass(frozen=True)
class Takeover:
    """One round of the standby protocol, with the broker reached through the callables given."""

    assignment: Assignment
    neighbour_present: Callable[[int], Awaitable[bool]]
    consumer_count: Callable[[int], Awaitable[int]]
    holds: Callable[[int], bool]
    subscribe: Callable[[int], Awaitable[None]]
    release: Callable[[int], Awaitable[None]]

    async def check(self) -> None:
        neighbour = self.assignment.neighbour
        if neighbour is None:
            return
        present = await self.neighbour_present(neighbour)
        for p in self.assignment.standby:
            if present and self.holds(p):
                logger.info("worker %d is back: handing partition %d back", neighbour, p)
                await self.release(p)
            elif not present and not self.holds(p) and await self.consumer_count(p) == 0:
                logger.warning("worker %d is gone: taking partition %d over", neighbour, p)
                await self.subscribe(p)
