"""The storm gauge: when the dedup stage switches to long windows, and back."""

from __future__ import annotations

from dedup.rabbitmq.consumer import StormGauge


def feed(gauge: StormGauge, rate: float, seconds: float, step: float = 0.02) -> None:
    for _ in range(round(seconds / step)):
        gauge.observe(round(rate * step), step)


def test_a_sustained_rate_above_the_threshold_is_a_storm() -> None:
    gauge = StormGauge(800)
    feed(gauge, 500, 5)
    assert not gauge.storm
    feed(gauge, 1400, 3)
    assert gauge.storm


def test_a_short_burst_is_not_a_storm() -> None:
    gauge = StormGauge(800)
    feed(gauge, 300, 3)
    feed(gauge, 5000, 0.04)  # two windows full of a burst
    assert not gauge.storm


def test_the_storm_ends_well_below_the_threshold_only() -> None:
    gauge = StormGauge(800)
    feed(gauge, 1400, 3)
    gauge.observe(6000, 10.0)  # a storm window: 600/s, below the threshold but above half of it
    assert gauge.storm
    gauge.observe(2000, 10.0)  # 200/s
    assert not gauge.storm


def test_a_zero_threshold_never_storms() -> None:
    gauge = StormGauge(0)
    feed(gauge, 100_000, 2)
    assert not gauge.storm
