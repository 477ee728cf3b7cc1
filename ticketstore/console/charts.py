"""Bar charts as plain geometry for the templates to draw as inline SVG: no JavaScript library, nothing fetched.

One shape serves every chart: categories along the x axis (days, weeks, hours, severities), one bar per series
in each category, a `<title>` on each bar carrying its exact figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, AXIS = 640.0, 200.0, 20.0
COLOURS = ("#1565c0", "#2e7d32", "#c62828", "#ef6c00", "#6a1b9a", "#00838f")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str], ...]  # (series name, colour)
    labels: tuple[tuple[float, str], ...]  # a few x-axis labels: (x, text)
    peak: float
    unit: str
    width: float = WIDTH
    height: float = HEIGHT + AXIS

    @property
    def empty(self) -> bool:
        return not any(bar.height > 0 for bar in self.bars)


def bars(title: str, categories: Sequence[str], series: Mapping[str, Mapping[str, float]], unit: str = "") -> Chart:
    """`series`: name → category → value (a missing category is 0)."""
    names = list(series)
    peak = max((v for values in series.values() for v in values.values()), default=0.0) or 1.0
    slot = WIDTH / max(len(categories), 1)
    width = min(max(slot * 0.8 / max(len(names), 1), 0.5), 48.0)
    offset = (slot - width * len(names)) / 2
    drawn: list[Bar] = []
    for i, category in enumerate(categories):
        for j, name in enumerate(names):
            value = float(series[name].get(category, 0))
            height = HEIGHT * value / peak
            figure = f"{value:g}{unit}"
            drawn.append(
                Bar(
                    x=round(i * slot + offset + j * width, 2),
                    y=round(HEIGHT - height, 2),
                    width=round(width, 2),
                    height=round(height, 2),
                    colour=COLOURS[j % len(COLOURS)],
                    title=f"{category} · {name}: {figure}",
                )
            )
    step = max(1, len(categories) // 6)
    labels = tuple((round(i * slot + offset, 2), c) for i, c in enumerate(categories) if i % step == 0)
    legend = tuple((name, COLOURS[j % len(COLOURS)]) for j, name in enumerate(names))
    return Chart(title, tuple(drawn), legend, labels, peak, unit)
