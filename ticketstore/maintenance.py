"""Maintenance windows (CONTRACT §8): which window silences an alert or a ticket at a given instant.

Pure: windows are plain frozen data loaded by `ticketstore.windows`, the instant is always passed in. A weekly
window is read in the policy's time zone on each local day, so "Sunday 02:00–04:00" stays 02:00–04:00 on the wall
clock across a daylight-saving change (on the night the clocks jump it is shorter by the missing hour).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from fnmatch import fnmatchcase
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from normalizers.schema import AlertdeskError
from ticketstore.calendar import Day
from ticketstore.policy import Duration

FIELDS = ("source", "instance", "host", "service", "dedup_key")
MAX_PATTERN = 255
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKLY = re.compile(r"^\s*([a-z,\-]+)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")

UTC_ZONE = ZoneInfo("UTC")
State = Literal["active", "upcoming", "ended"]
STATES: tuple[State, ...] = ("active", "upcoming", "ended")


class InvalidWindow(AlertdeskError):
    """A window that cannot be created: `field` names the one at fault (the API answers 422)."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.msg = msg


class WindowNotFound(AlertdeskError):
    """No maintenance window with that id: 404."""


# --- what an operator asks for --------------------------------------------------------------------------------


class Match(BaseModel):
    """Shell patterns (`db*`), all given must match; an absent field matches anything."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    source: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    instance: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    host: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    service: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    dedup_key: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)

    def patterns(self) -> dict[str, str]:
        return {name: value for name in FIELDS if (value := getattr(self, name)) is not None}


class Weekly(BaseModel):
    """Every week on `days`, from `start` to `end` local time in the policy's time zone (same day: end > start)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: tuple[Day, ...] = Field(min_length=1)
    start: time
    end: time

    @model_validator(mode="after")
    def _ends_after_start(self) -> Weekly:
        if self.end <= self.start:
            raise ValueError("end must be after start on the same day (split a window across midnight in two)")
        return self

    def covers(self, at: datetime, zone: ZoneInfo) -> bool:
        local = at.astimezone(zone)
        if _DAYS[local.weekday()] not in self.days:
            return False
        day = local.date()
        return datetime.combine(day, self.start, zone) <= at < datetime.combine(day, self.end, zone)

    def describe(self) -> str:
        return f"{','.join(self.days)} {self.start:%H:%M}-{self.end:%H:%M}"


def parse_weekly(text: str) -> Weekly:
    """`sun 02:00-04:00`, `sat,sun 01:00-05:00`, `mon-fri 12:00-13:00` → `Weekly` (ValueError if not)."""
    found = _WEEKLY.match(text.lower())
    if not found:
        raise ValueError(f"{text!r} is not like 'sun 02:00-04:00' or 'mon-fri 12:00-13:00'")
    days: list[str] = []
    for part in found.group(1).split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"{part!r}: days are mon, tue, wed, thu, fri, sat, sun")
        i, j = _DAYS.index(first), _DAYS.index(last or first)
        days.extend(_DAYS[k % 7] for k in range(i, j + 1 if j >= i else j + 8))
    start, end = (time.fromisoformat(part.zfill(5)) for part in (found[2], found[3]))
    return Weekly(days=tuple(dict.fromkeys(days)), start=start, end=end)


class WindowRequest(BaseModel):
    """`POST /api/maintenance` and `alertdesk maintenance add`: the same checks for both."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    match: Match = Field(default_factory=Match)
    all: bool = Field(default=False, description="required (true) with an empty match: it silences everything")
    starts_at: AwareDatetime | None = Field(default=None, description="default: now")
    ends_at: AwareDatetime | None = Field(default=None, description="give `ends_at` or `duration`")
    duration: Duration | None = Field(default=None, description="e.g. 2h, 30m, 1d (from `starts_at`)")
    comment: str = Field(min_length=1, max_length=2000)
    recurrence: Weekly | None = Field(
        default=None, description="weekly occurrences within starts_at..ends_at (no end given: standing)"
    )
    by: str | None = Field(default=None, min_length=1, max_length=255, description="who, on an open API")

    @field_validator("recurrence", mode="before")
    @classmethod
    def _weekly_text(cls, value: Any) -> Any:
        return parse_weekly(value) if isinstance(value, str) else value

    def window(self, now: datetime, by: str) -> NewWindow:
        """The window to store, its times resolved against `now`. Raises `InvalidWindow` naming the field."""
        patterns = self.match.patterns()
        if not patterns and not self.all:
            raise InvalidWindow("match", 'an empty match silences every alert: say "all" (--all) to mean it')
        if patterns and self.all:
            raise InvalidWindow("all", '"all": true goes with an empty match only')
        if self.ends_at is not None and self.duration is not None:
            raise InvalidWindow("duration", "give ends_at or duration, not both")
        starts = self.starts_at or now
        if self.duration is not None:
            if self.duration <= timedelta(0):
                raise InvalidWindow("duration", "must be longer than 0")
            ends: datetime | None = starts + self.duration
        else:
            ends = self.ends_at
        if ends is None and self.recurrence is None:
            raise InvalidWindow("ends_at", "give ends_at or duration (only a recurring window may have no end)")
        if ends is not None and ends <= starts:
            raise InvalidWindow("ends_at", f"ends before it starts ({starts.isoformat()})")
        if ends is not None and ends <= now:
            raise InvalidWindow("ends_at", "is in the past: the window would never apply")
        return NewWindow(patterns, starts, ends, self.comment, self.recurrence, by)


@dataclass(frozen=True, slots=True)
class NewWindow:
    match: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    comment: str
    recurrence: Weekly | None
    created_by: str


# --- a stored window ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    id: int
    match: Mapping[str, str]  # field -> shell pattern; empty: everything
    starts_at: datetime
    ends_at: datetime | None  # None: a standing recurring window
    comment: str
    created_by: str
    created_at: datetime
    recurrence: Weekly | None = None
    ended_by: str | None = None
    ended_at: datetime | None = None  # ended early

    def over_at(self) -> datetime | None:
        """When it stops applying for good (ended early, or its end); None: never."""
        if self.ended_at is not None:
            return self.ended_at if self.ends_at is None else min(self.ended_at, self.ends_at)
        return self.ends_at

    def covers(self, at: datetime, zone: ZoneInfo) -> bool:
        over = self.over_at()
        if at < self.starts_at or (over is not None and at >= over):
            return False
        return self.recurrence is None or self.recurrence.covers(at, zone)

    def next_change(self, at: datetime, zone: ZoneInfo) -> datetime | None:
        """The first instant after `at` where `covers` may change (a start, an end, a weekly occurrence's edge)."""
        over = self.over_at()
        edges = [self.starts_at] if over is None else [self.starts_at, over]
        if self.recurrence is not None:
            today = at.astimezone(zone).date()
            for day in (today + timedelta(days=n) for n in range(8)):
                edges += [datetime.combine(day, edge, zone) for edge in (self.recurrence.start, self.recurrence.end)]
        later = [edge for edge in edges if edge > at and (over is None or edge <= over)]
        return min(later, default=None)

    def matches(self, fields: Mapping[str, str | None]) -> bool:
        return all(fnmatchcase(fields.get(name) or "", pattern) for name, pattern in self.match.items())

    def state(self, at: datetime, zone: ZoneInfo) -> State:
        over = self.over_at()
        if over is not None and at >= over:
            return "ended"
        return "active" if self.covers(at, zone) else "upcoming"

    def describe(self) -> str:
        what = " ".join(f"{k}={v}" for k, v in self.match.items()) or "everything"
        when = f"weekly {self.recurrence.describe()}" if self.recurrence else f"until {self.ends_at:%Y-%m-%d %H:%M}Z"
        return f"maintenance window {self.id} ({what}, {when}): {self.comment}"


@dataclass(frozen=True, slots=True)
class Windows:
    """The windows a store process knows now; `zone` is the policy's (weekly windows are local times)."""

    windows: Sequence[Window] = ()
    zone: ZoneInfo = UTC_ZONE

    def matching(self, fields: Mapping[str, str | None], at: datetime) -> Window | None:
        """The first (oldest) window covering `at` whose patterns fit `fields`."""
        return next((w for w in self.windows if w.matches(fields) and w.covers(at, self.zone)), None)

    def covering(self, at: datetime) -> list[int]:
        return [w.id for w in self.windows if w.covers(at, self.zone)]


NO_WINDOWS = Windows()


def fields_of(item: object) -> dict[str, str | None]:
    """What a window's patterns are matched against, read off an alert or a ticket (both carry the five fields)."""
    return {name: getattr(item, name) for name in FIELDS}


def zone_of(timezone: str | None) -> ZoneInfo:
    return ZoneInfo(timezone or "UTC")
