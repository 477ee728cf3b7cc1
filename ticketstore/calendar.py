"""Business hours: deadlines of the lower severities that only count while the service desk is staffed.

A P4 opened on Friday at 17:30 with 8 h to respond is due on Monday at 15:30, not on Saturday at 01:30.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    days: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(8, 0)
    end: time = time(18, 0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _window(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if not self.days:
            raise ValueError("at least one day is needed")
        return self

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start` plus `duration` of business time (in UTC)."""
        left = duration
        for begin, end in self._periods(start):
            if begin + left <= end:
                return (begin + left).astimezone(UTC)
            left -= end - begin
        raise ValueError("business hours never reach the deadline")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The business time from `start` to `end` (none when `end` is not later)."""
        end = end.astimezone(ZoneInfo(self.timezone))  # the periods' zone: their arithmetic is in local time
        total = timedelta(0)
        for begin, finish in self._periods(start):
            if begin >= end:
                break
            total += min(finish, end) - begin
        return total

    def _periods(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The business periods from `start` on, in the business hours' zone, the first one cut at `start`."""
        zone = ZoneInfo(self.timezone)
        cursor = start.astimezone(zone)
        for _ in range(3700):  # ten years of days: a bound, never reached by a sane policy
            day_start = datetime.combine(cursor.date(), self.start, zone)
            day_end = datetime.combine(cursor.date(), self.end, zone)
            if _DAYS[cursor.weekday()] in self.days and cursor < day_end:
                yield max(cursor, day_start), day_end
            cursor = datetime.combine(cursor.date() + timedelta(days=1), time(0), zone)
