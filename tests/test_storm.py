"""The dedup worker's hold: plain repeats wait per key and leave folded; news never waits, and keeps its key's order.

Deliveries here are stand-ins (a channel that is open or closed, a delivery tag): the hold only reads those. The
broker side (acks, redelivery after a kill) is in tests/test_distributed.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from dedup.fold import fold
from dedup.hold import Hold, HoldConfig, Release
from dedup.rabbitmq.window import Delivery
from normalizers.schema import Alert, Kind, Severity, Source

AT = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
ids = itertools.count()


@dataclass
class Channel:
    is_closed: bool = False


@dataclass
class Message:
    delivery_tag: int


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def alert(key: str, kind: Kind = Kind.PROBLEM, severity: Severity = Severity.CRITICAL, episode: str = "1") -> Alert:
    return Alert(
        id=f"a{next(ids)}",
        source=Source.NAGIOS,
        dedup_key=key,
        kind=kind,
        severity=severity if kind is Kind.PROBLEM else None,
        episode_id=episode,
        host=key,
        title="HTTP CRITICAL",
        received_at=AT,
    )


class Partition:
    """One partition's channel: each call delivers a message carrying the given alerts."""

    def __init__(self) -> None:
        self.channel = Channel()
        self.tag = 0

    def deliver(self, *alerts: Alert) -> list[tuple[Delivery, Alert]]:
        self.tag += 1
        delivery = Delivery(
            0, cast("AbstractChannel", self.channel), cast("AbstractIncomingMessage", Message(self.tag))
        )
        return [(delivery, a) for a in alerts]


def sent(release: Release) -> tuple[list[str], list[str]]:
    return [a.id for _, a in release.repeats], [a.id for _, a in release.news]


def test_a_new_problem_passes_and_its_plain_repeats_are_held() -> None:
    hold, p = Hold(HoldConfig(count=50)), Partition()
    first, again, third = alert("web"), alert("web"), alert("web")
    assert sent(hold.take(p.deliver(first))) == ([], [first.id])
    window = p.deliver(again, third)
    assert sent(hold.take(window)) == ([], [])
    assert hold.held == 2 and hold.holds(window[0][0])


def test_news_takes_its_key_s_held_repeats_along_before_it() -> None:
    for news in (alert("web", Kind.RECOVERY), alert("web", severity=Severity.WARNING), alert("web", episode="2")):
        hold, p = Hold(HoldConfig(count=50)), Partition()
        hold.take(p.deliver(alert("web"), alert("db")))
        repeats = [alert("web"), alert("web")]
        held = p.deliver(*repeats)
        hold.take(held)
        hold.take(p.deliver(alert("db")))
        assert sent(hold.take(p.deliver(news))) == ([a.id for a in repeats], [news.id])
        assert hold.held == 1 and not hold.holds(held[0][0])  # db's repeat waits on
    # the stage folds the repeats, then the news, as two commands in that order (the last news: a new episode)
    commands = [*fold(repeats), *fold([news])]
    assert [(c.alert.kind, len(c.alert_ids)) for c in commands] == [(Kind.PROBLEM, 2), (Kind.PROBLEM, 1)]


def test_a_key_leaves_when_it_holds_count_repeats_whatever_the_rate() -> None:
    hold, p = Hold(HoldConfig(count=3)), Partition()
    hold.take(p.deliver(alert("web"), alert("db")))
    assert sent(hold.take(p.deliver(alert("web"), alert("db")))) == ([], [])
    repeats = [alert("web"), alert("web")]
    release = hold.take(p.deliver(*repeats))
    assert len(release.repeats) == 3 and {a.dedup_key for _, a in release.repeats} == {"web"}
    assert len(fold(a for _, a in release.repeats)) == 1  # one command, so one row, for the three
    assert hold.held == 1  # db's repeat waits on


def test_a_held_repeat_leaves_after_the_longest_hold_while_other_keys_keep_arriving() -> None:
    clock = Clock()
    hold, p = Hold(HoldConfig(count=50, seconds=10, quiet=1), clock), Partition()
    assert hold.due_in() is None
    hold.take(p.deliver(alert("web"), alert("db")))
    hold.take(p.deliver(alert("web")))
    for second in range(1, 10):  # db keeps repeating: arrivals never pause
        clock.now = second
        assert sent(hold.take(p.deliver(alert("db")))) == ([], [])
    assert hold.due_in() == 1  # web's oldest repeat has a second left (db's since 1 s: 2 s)
    clock.now = 10
    assert [a.dedup_key for _, a in hold.take(p.deliver(alert("db"))).repeats] == ["web"]
    assert hold.held == 10  # db's repeats wait on


def test_everything_held_leaves_once_arrivals_pause() -> None:
    clock = Clock()
    hold, p = Hold(HoldConfig(count=50, seconds=30, quiet=1), clock), Partition()
    hold.take(p.deliver(alert("web"), alert("db")))
    held = p.deliver(alert("web"), alert("db"), alert("web"))
    hold.take(held)
    clock.now = 0.5
    assert hold.due_in() == 0.5
    assert sent(hold.take([])) == ([], [])  # a window closed by time: not yet quiet long enough
    clock.now = 1.0
    assert hold.due_in() == 0
    release = hold.take([])
    assert sorted(a.dedup_key for _, a in release.repeats) == ["db", "web", "web"]
    assert hold.held == 0 and not hold.holds(held[0][0]) and hold.due_in() is None


def test_a_batch_delivery_is_held_until_every_alert_of_it_left() -> None:
    hold, p = Hold(HoldConfig(count=50)), Partition()
    hold.take(p.deliver(alert("web"), alert("db")))
    batch = p.deliver(alert("web"), alert("db"))
    delivery = batch[0][0]
    hold.take(batch)
    hold.take(p.deliver(alert("web", Kind.RECOVERY)))
    assert hold.holds(delivery)  # db's repeat is still held
    hold.take(p.deliver(alert("db", Kind.RECOVERY)))
    assert not hold.holds(delivery)


def test_the_oldest_keys_leave_first_when_the_worker_holds_its_capacity() -> None:
    hold, p = Hold(HoldConfig(count=50, capacity=2)), Partition()
    hold.take(p.deliver(alert("a"), alert("b"), alert("c")))
    hold.take(p.deliver(alert("a")))
    hold.take(p.deliver(alert("b")))
    release = hold.take(p.deliver(alert("c")))
    assert [a.dedup_key for _, a in release.repeats] == ["a"]


def test_a_channel_s_oldest_deliveries_leave_before_the_prefetch_would_stop_it() -> None:
    hold, p = Hold(HoldConfig(count=50, span=3)), Partition()
    hold.take(p.deliver(alert("a"), alert("b")))
    oldest = p.deliver(alert("a"))
    hold.take(oldest)
    hold.take(p.deliver(alert("b")))
    hold.take(p.deliver(alert("b")))
    release = hold.take(p.deliver(alert("b")))  # tag 5: the held tag 2 is 3 behind
    assert [a.dedup_key for _, a in release.repeats] == ["a"] and not hold.holds(oldest[0][0])


def test_held_repeats_of_a_closed_channel_are_dropped_and_the_next_alert_is_news() -> None:
    hold, p = Hold(HoldConfig(count=50)), Partition()
    hold.take(p.deliver(alert("web")))
    hold.take(p.deliver(alert("web")))
    p.channel.is_closed = True  # the partition moved on: its unacked messages are redelivered to the next owner
    q = Partition()
    again = alert("web")
    release = hold.take(q.deliver(again))
    assert sent(release) == ([], [again.id]) and hold.held == 0


def test_deliveries_that_passed_as_news_count_toward_the_prefetch_too() -> None:
    hold, p = Hold(HoldConfig(count=50, span=3)), Partition()
    hold.take(p.deliver(alert("a")))
    oldest = p.deliver(alert("a"))
    hold.take(oldest)
    hold.take(p.deliver(alert("b")))
    hold.take(p.deliver(alert("c")))
    release = hold.take(p.deliver(alert("d")))  # unacked from tag 2 to tag 5: the prefetch nears
    assert [a.dedup_key for _, a in release.repeats] == ["a"] and not hold.holds(oldest[0][0])


def test_a_closed_channel_whose_delivery_let_some_keys_go_already_is_dropped_cleanly() -> None:
    hold, p = Hold(HoldConfig(count=50)), Partition()
    hold.take(p.deliver(alert("web"), alert("db")))
    batch = p.deliver(alert("web"), alert("db"))
    hold.take(batch)
    hold.take(p.deliver(alert("web", Kind.RECOVERY)))  # web's repeat left; the batch still holds db's
    p.channel.is_closed = True  # a partition handed back while the batch is held
    assert sent(hold.take([])) == ([], []) and hold.held == 0 and hold.due_in() is None
