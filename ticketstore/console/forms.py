"""What the console's query strings and forms mean: filters, sort and cursor of the queue, an action, a CSV row.

Anything that cannot be used raises `Invalid` naming the field (the pages answer 422 and change nothing).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from normalizers.schema import Severity, Source
from ticketstore import actions
from ticketstore.actions import Action
from ticketstore.api.queries import TicketFilters
from ticketstore.console.queue import SORTS, Cursor, Sort, parse_cursor
from ticketstore.ticket import STATUSES
from ticketstore.view import TicketView

CSV_COLUMNS = [
    "number",
    "status",
    "priority",
    "severity",
    "source",
    "host",
    "service",
    "title",
    "assigned_group",
    "assignee",
    "first_seen",
    "last_seen",
    "acknowledged_at",
    "resolved_at",
    "occurrences",
    "response_breached",
    "resolution_breached",
]


class Invalid(Exception):
    """A query parameter or form field that cannot be used: 422 naming it, nothing changed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def queue_parameters(request: web.Request) -> tuple[TicketFilters, Sort, Cursor | None]:
    q = request.query

    def words(name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        values = tuple(v for v in q.getall(name, []) if v)
        for v in values:
            if v not in allowed:
                raise Invalid(name, f"unknown value {v!r}; use one of {', '.join(allowed)}")
        return values

    def text(name: str) -> str | None:
        value = q.get(name, "").strip()
        if len(value) > 255:
            raise Invalid(name, "at most 255 characters")
        return value or None

    sort = q.get("sort", "newest") or "newest"
    if sort not in SORTS:
        raise Invalid("sort", f"use one of {', '.join(SORTS)}")
    raw_cursor = q.get("cursor", "").strip()
    try:
        cursor = parse_cursor(sort, raw_cursor) if raw_cursor else None
    except ValueError:
        raise Invalid("cursor", "not a cursor: follow the page's Next link") from None
    filters = TicketFilters(
        status=words("status", STATUSES),
        severity=words("severity", tuple(s.value for s in Severity)),
        source=words("source", tuple(s.value for s in Source)),
        group=text("group"),
        assignee=text("assignee"),
        q=text("q"),
    )
    return filters, sort, cursor


def action(name: str, by: str, form: Any) -> Action:
    def field(key: str, *, required: bool = False, limit: int = 255) -> str | None:
        value = form.get(key)
        value = value.strip() if isinstance(value, str) else ""
        if required and not value:
            raise Invalid(key, "required")
        if len(value) > limit:
            raise Invalid(key, f"at most {limit} characters")
        return value or None

    if name == "acknowledge":
        return actions.acknowledge(by)
    if name == "assign":
        group, person = field("group"), field("assignee")
        if group is None and person is None:
            raise Invalid("group", "give a group, a person, or both")
        return actions.assign(by, group, person)
    if name == "comment":
        return actions.comment(by, field("text", required=True, limit=10_000) or "")
    if name == "status":
        status = field("status", required=True)
        if status not in STATUSES:
            raise Invalid("status", f"use one of {', '.join(STATUSES)}")
        return actions.set_status(by, status)
    if name == "resolve":
        return actions.resolve(by)
    if name == "close":
        return actions.close(by)
    if name == "reopen":
        return actions.set_status(by, "open")
    raise Invalid("action", f"no action named {name!r}")


def csv_row(ticket: TicketView) -> list[str]:
    data = json.loads(ticket.model_dump_json())
    data.update(response_breached=ticket.sla.response_breached, resolution_breached=ticket.sla.resolution_breached)
    return ["" if data.get(col) is None else _cell(str(data[col])) for col in CSV_COLUMNS]


def _cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (=, +, -, @ at the start)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
