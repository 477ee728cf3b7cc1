"""The maintenance windows' JSON (CONTRACT §8): a window as the API answers it, and the list's query.

`routes.py` serves `POST/GET /api/maintenance` and `DELETE /api/maintenance/{id}` with these; the request body is
`ticketstore.maintenance.WindowRequest`, shared with `alertdesk maintenance add`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from ticketstore.calendar import Day
from ticketstore.maintenance import STATES, State, Window

_LIST_PARAMETERS = frozenset({"state"})


class WeeklyView(BaseModel):
    model_config = ConfigDict(frozen=True)

    days: list[Day]
    start: time = Field(description="local time in the policy's time zone")
    end: time


class WindowView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    state: State = Field(description="active: silencing now; upcoming: not yet (or between weekly occurrences)")
    match: dict[str, str] = Field(description="field → shell pattern; empty: every alert (`all`)")
    starts_at: datetime
    ends_at: datetime | None = Field(description="null: a standing weekly window")
    recurrence: WeeklyView | None
    comment: str
    created_by: str
    created_at: datetime
    ended_by: str | None = Field(description="who ended it early")
    ended_at: datetime | None = Field(description="when it was ended early")

    @classmethod
    def of(cls, window: Window, now: datetime, zone: ZoneInfo) -> WindowView:
        weekly = window.recurrence
        return cls(
            id=window.id,
            state=window.state(now, zone),
            match=dict(window.match),
            starts_at=window.starts_at,
            ends_at=window.ends_at,
            recurrence=WeeklyView(days=list(weekly.days), start=weekly.start, end=weekly.end) if weekly else None,
            comment=window.comment,
            created_by=window.created_by,
            created_at=window.created_at,
            ended_by=window.ended_by,
            ended_at=window.ended_at,
        )


class WindowList(BaseModel):
    model_config = ConfigDict(frozen=True)

    windows: list[WindowView] = Field(description="oldest first")


def list_parameters(query: Mapping[str, str]) -> tuple[State | None, list[dict[str, Any]]]:
    """The `state` asked for, and the query's faults (each naming its parameter)."""
    errors: list[dict[str, Any]] = [
        {"loc": ["query", name], "msg": "unknown query parameter"} for name in query if name not in _LIST_PARAMETERS
    ]
    raw = query.get("state", "").strip()
    state: State | None = None
    for known in STATES:
        if raw == known:
            state = known
    if raw and state is None:
        errors.append({"loc": ["query", "state"], "msg": f"unknown {raw}; use {', '.join(STATES)}"})
    return state, errors
