"""The console's maintenance windows page (CONTRACT §8): list, create, end, and "silence this host" from a ticket.

Everything goes through `MaintenanceWindows`, as the API and the CLI do, with the signed-in person as the actor. A
form's time without a zone (what a browser's date-time field sends) is read as UTC, the zone the console shows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ticketstore.api.maintenance import WindowView
from ticketstore.console.forms import Invalid
from ticketstore.maintenance import FIELDS, InvalidWindow, Match, WindowRequest
from ticketstore.view import TicketView
from ticketstore.windows import MaintenanceWindows

SILENCE_FOR = timedelta(hours=2)
ENDED_LISTED = 20  # the newest ended windows the page shows ("recently ended")
FORM_FIELDS = (*FIELDS, "all", "starts_at", "ends_at", "duration", "comment", "recurrence")
_GLOB = re.compile(r"([*?\[])")


class WindowPage:
    """What the page shows and does; the handlers in `pages.py` check the person and the CSRF token first."""

    def __init__(self, windows: MaintenanceWindows) -> None:
        self._windows = windows

    async def listing(self, now: datetime) -> dict[str, list[WindowView]]:
        views = [WindowView.of(w, now, self._windows.zone) for w in await self._windows.list()]
        ended = [v for v in views if v.state == "ended"][::-1][:ENDED_LISTED]
        return {
            "active": [v for v in views if v.state == "active"],
            "upcoming": [v for v in views if v.state == "upcoming"],
            "ended": ended,
        }

    async def create(self, form: Any, by: str) -> WindowView:
        request = window_request(form)
        try:
            window = await self._windows.create(request, by)
        except InvalidWindow as exc:
            raise Invalid(_form_field(exc.field), exc.msg) from None
        return WindowView.of(window, window.created_at, self._windows.zone)

    async def silence(self, ticket: TicketView, by: str) -> WindowView:
        """A window of `SILENCE_FOR` matching exactly the ticket's host and source (no pattern in a host name)."""
        if not ticket.host:
            raise Invalid("host", "this ticket has no host to silence")
        try:
            match = Match(host=_literal(ticket.host), source=ticket.source.value)
        except ValidationError:
            raise Invalid("host", "too long to match in a maintenance window") from None
        request = WindowRequest(
            match=match, duration=SILENCE_FOR, comment=f"silenced from {ticket.number} for {_hours(SILENCE_FOR)}"
        )
        window = await self._windows.create(request, by)
        return WindowView.of(window, window.created_at, self._windows.zone)

    async def end(self, window_id: int, by: str) -> None:
        await self._windows.end(window_id, by)


def window_request(form: Any) -> WindowRequest:
    """The create form as a `WindowRequest`; empty fields are left out. Raises `Invalid` naming the field."""

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    data: dict[str, Any] = {"match": {name: text(name) for name in FIELDS if text(name)}, "comment": text("comment")}
    if text("all"):
        data["all"] = True
    for name in ("starts_at", "ends_at"):
        if text(name):
            data[name] = _instant(name, text(name))
    for name in ("duration", "recurrence"):
        if text(name):
            data[name] = text(name)
    try:
        return WindowRequest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error["loc"]]
        name = loc[1] if loc[0] == "match" and len(loc) > 1 else loc[0]
        raise Invalid(_form_field(name), str(error["msg"]).removeprefix("Value error, ")) from None


def _instant(name: str, value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(name, "not a date and time like 2026-12-24T18:00 (UTC)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _form_field(name: str) -> str:
    return name if name in FORM_FIELDS else "match"


def _literal(value: str) -> str:
    """A shell pattern matching exactly `value` (`*`, `?` and `[` taken literally)."""
    return _GLOB.sub(r"[\1]", value)


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"
