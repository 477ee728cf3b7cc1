"""Hold repeats, pass news: a dedup worker keeps back the alerts that would only bump an open ticket's count.

A *plain repeat* is a problem of a key whose last alert this worker sent downstream was a problem of the same
episode, severity and source, on the same (still open) channel: applied, it changes nothing on the ticket but its
occurrence count. Such alerts are held per key; everything else is *news* and leaves in the next window, after
(in order) its key's held repeats. A key's repeats leave together, as one folded command, when it holds
`count` of them (this, not the alert rate, is what keeps rows per alert low on any machine), when the oldest is
`seconds` old, when the worker holds `capacity` alerts, or when a channel's unacked deliveries reach `span` (the
prefetch would stop the deliveries). All of them leave once no alert arrived for `quiet` seconds: a storm that
stopped has nothing left to fold, so its counts need not lag. A delivery is acked only once none of its alerts is
held (`holds`).

What was sent is remembered in process only, per channel: after a restart, a takeover or a lost channel the
first alert of a key passes as news again. Held alerts of a channel that closed are dropped, never published:
their messages were never acked, so they are redelivered to whoever holds the partition now (the fence).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aio_pika.abc import AbstractChannel

from dedup.rabbitmq.window import Delivery
from normalizers.schema import Alert, Kind

Signature = tuple[str, str | None, str | None]  # source, episode, severity of a key's last problem sent


@dataclass(frozen=True)
class HoldConfig:
    count: int = 50  # a key's held repeats that leave together
    seconds: float = 30.0  # the longest a repeat is held (how far an open ticket's count may lag)
    quiet: float = 1.0  # everything held leaves once no alert arrived for this long
    capacity: int = 30_000  # the most alerts a worker holds (memory)
    span: int = 1_500  # the most unacked deliveries per channel (below the prefetch, or deliveries stop)
    remembered: int = 100_000  # the most keys whose last sent problem is remembered


@dataclass(frozen=True)
class Release:
    """One window's plan: the held repeats to publish first (per key, before its news), then the news."""

    repeats: list[tuple[Delivery, Alert]]
    news: list[tuple[Delivery, Alert]]


@dataclass(eq=False)
class _Kept:
    delivery: Delivery
    waiting: int = 0  # its alerts still held
    keys: set[str] = field(default_factory=set)


def _signature(alert: Alert) -> Signature | None:
    if alert.kind is not Kind.PROBLEM:
        return None
    return alert.source.value, alert.episode_id, alert.severity.value if alert.severity else None


class Hold:
    """The held repeats of one dedup worker, and which deliveries they keep from being acked."""

    def __init__(self, config: HoldConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._sent: dict[str, tuple[AbstractChannel, Signature]] = {}
        self._held: dict[str, list[tuple[Delivery, Alert]]] = {}  # in the order of each key's first held repeat
        self._since: dict[str, float] = {}
        self._kept: dict[int, _Kept] = {}  # id(delivery) -> its held count, for deliveries with alerts held
        self._channels: dict[int, dict[int, _Kept]] = {}  # id(channel) -> its kept deliveries, oldest first
        self._newest: dict[int, tuple[AbstractChannel, int]] = {}  # id(channel) -> it, its newest delivery tag
        self._last_arrival = 0.0
        self.held = 0

    def holds(self, delivery: Delivery) -> bool:
        """Whether some alert of `delivery` is still held (so it must not be acked yet)."""
        return id(delivery) in self._kept

    def due_in(self) -> float | None:
        """Seconds until held repeats must leave (the oldest's time is up, or arrivals paused); None: none held."""
        for key in self._since:
            due = min(self._since[key] + self.config.seconds, self._last_arrival + self.config.quiet)
            return max(due - self._clock(), 0.0)
        return None

    def take(self, window: list[tuple[Delivery, Alert]]) -> Release:
        """Sort a window's alerts (arrival order) into held and leaving; returns what to publish now."""
        self._drop_closed()
        news_keys: set[str] = set()
        for delivery, alert in window:
            self._delivered(delivery)
            key = alert.dedup_key
            if key not in news_keys and not self._repeats(delivery, alert):
                news_keys.add(key)
        now = self._clock()
        quiet = not window and now - self._last_arrival >= self.config.quiet
        if window:
            self._last_arrival = now
        touched: set[str] = set()
        for delivery, alert in window:
            if alert.dedup_key not in news_keys:
                self._keep(delivery, alert, now)
                touched.add(alert.dedup_key)
        leaving = {k for k in news_keys if k in self._held}
        leaving.update(k for k in touched if len(self._held[k]) >= self.config.count)
        leaving.update(self._held if quiet else self._expired(now))
        leaving.update(self._relieve(leaving))
        repeats = [pair for key in list(self._held) if key in leaving for pair in self._release(key)]
        news = [(delivery, alert) for delivery, alert in window if alert.dedup_key in news_keys]
        for delivery, alert in window:
            if alert.dedup_key in news_keys:
                self._remember(delivery, alert)
        return Release(repeats, news)

    def _repeats(self, delivery: Delivery, alert: Alert) -> bool:
        sent = self._sent.get(alert.dedup_key)
        signature = _signature(alert)
        return sent is not None and signature is not None and sent[0] is delivery.channel and sent[1] == signature

    def _remember(self, delivery: Delivery, alert: Alert) -> None:
        key = alert.dedup_key
        self._sent.pop(key, None)  # re-inserted last: the oldest remembered key is forgotten first
        signature = _signature(alert)
        if signature is not None:
            self._sent[key] = (delivery.channel, signature)
            if len(self._sent) > self.config.remembered:
                del self._sent[next(iter(self._sent))]

    def _keep(self, delivery: Delivery, alert: Alert, now: float) -> None:
        key = alert.dedup_key
        if key not in self._held:
            self._held[key] = []
            self._since[key] = now
        self._held[key].append((delivery, alert))
        kept = self._kept.get(id(delivery))
        if kept is None:
            kept = self._kept[id(delivery)] = _Kept(delivery)
            self._channels.setdefault(id(delivery.channel), {})[id(delivery)] = kept
        kept.waiting += 1
        kept.keys.add(key)
        self.held += 1

    def _delivered(self, delivery: Delivery) -> None:
        channel, tag = delivery.channel, delivery.message.delivery_tag or 0
        known = self._newest.get(id(channel))
        if known is None or known[0] is not channel or known[1] < tag:
            self._newest[id(channel)] = channel, tag

    def _expired(self, now: float) -> list[str]:
        expired = []
        for key, since in self._since.items():  # oldest first
            if now - since < self.config.seconds:
                break
            expired.append(key)
        return expired

    def _relieve(self, leaving: set[str]) -> set[str]:
        """Keys to release so the worker stays under its capacity and each channel under its span."""
        more: set[str] = set()
        left = self.held - sum(len(self._held[k]) for k in leaving)
        for key, held in self._held.items():  # oldest first
            if left <= self.config.capacity:
                break
            if key not in leaving:
                more.add(key)
                left -= len(held)
        for channel, kept in self._channels.items():
            newest = self._newest[channel][1]
            for oldest in kept.values():  # oldest first: release its keys until the span is back under the limit
                if newest - (oldest.delivery.message.delivery_tag or 0) < self.config.span:
                    break
                more.update(oldest.keys - leaving)
        return more

    def _release(self, key: str) -> list[tuple[Delivery, Alert]]:
        """Take a key's held repeats out of the hold (their deliveries may be acked once nothing else is held)."""
        held = self._held.pop(key)
        del self._since[key]
        for delivery, _ in held:
            kept = self._kept[id(delivery)]
            kept.waiting -= 1
            kept.keys.discard(key)
            if kept.waiting == 0:
                self._forget(kept)
        self.held -= len(held)
        return held

    def _forget(self, kept: _Kept) -> None:
        del self._kept[id(kept.delivery)]
        channel = self._channels[id(kept.delivery.channel)]
        del channel[id(kept.delivery)]
        if not channel:
            del self._channels[id(kept.delivery.channel)]

    def _drop_closed(self) -> None:
        """The fence: held alerts of a closed channel are dropped, unpublished; they are redelivered."""
        closed = [
            kept
            for channel in list(self._channels.values())
            if next(iter(channel.values())).delivery.channel.is_closed
            for kept in channel.values()
        ]
        if not closed:
            return
        dead = {id(kept.delivery) for kept in closed}
        for key in {key for kept in closed for key in kept.keys}:
            held = self._held.get(key, [])
            alive = [(d, a) for d, a in held if id(d) not in dead]
            self.held -= len(held) - len(alive)
            if alive:
                self._held[key] = alive
            else:
                del self._held[key], self._since[key]
        for kept in closed:
            self._forget(kept)
            self._newest.pop(id(kept.delivery.channel), None)
