"""A ticket as the outside world reads it (CONTRACT §4): the JSON of the API, of notifications and of trackers.

One pydantic model, so the API's answers, the OpenAPI document and the notification payloads written with a ticket
change cannot drift apart. Times are aware UTC datetimes, written ISO 8601 with `Z`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from normalizers.schema import Severity, Source
from ticketstore.ticket import ticket_number

Status = Literal["open", "in_progress", "waiting", "resolved", "closed"]


class SlaView(BaseModel):
    model_config = ConfigDict(frozen=True)

    respond_by: AwareDatetime | None = Field(description="acknowledge by then, or the response SLA is breached")
    resolve_by: AwareDatetime | None = Field(description="resolve by then, or the resolution SLA is breached")
    response_breached: bool
    resolution_breached: bool


class HistoryView(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    kind: str = Field(description="what happened: opened, acknowledged, comment, severity_raised, resolved, …")
    actor: str | None = Field(description="the operator, or the source that reported it; null: alertdesk itself")
    detail: str


class TicketView(BaseModel):
    """One ticket. `history` is present only in the single-ticket answers (GET by id and the actions)."""

    model_config = ConfigDict(frozen=True)

    id: int
    number: str = Field(description="human ticket number, unique and never reused, e.g. INC-000123")
    dedup_key: str
    source: Source
    instance: str | None = Field(description="the named source instance, e.g. paris in zabbix@paris")
    title: str
    description: str
    host: str
    host_display: str | None
    service: str | None
    address: str | None
    severity: Severity = Field(description="the latest problem notification's severity")
    peak_severity: Severity = Field(description="the highest severity seen; priority and SLA follow it")
    priority: str = Field(pattern=r"^P[1-5]$")
    status: Status
    suppressed: bool = Field(description="in maintenance / downtime: escalation paused")
    flapping: bool
    occurrences: int = Field(description="problem notifications counted on this ticket")
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    acknowledged_by: str | None
    acknowledged_at: AwareDatetime | None
    resolved_at: AwareDatetime | None
    closed_at: AwareDatetime | None
    assigned_group: str | None
    assignee: str | None
    escalation_level: int
    sla: SlaView
    previous_ticket_id: int | None = Field(description="the key's ticket before this one, when there was one")
    source_refs: dict[str, str] = Field(description="the source's own ids: problem ids, event ids, links")
    contact: str | None
    tags: dict[str, str]
    runbook_url: str | None = Field(description="the runbook of the route or severity, filled in for this ticket")
    external_refs: dict[str, str] = Field(
        description="the ticket's record in each tracker: tracker name → remote key (INC0012345, OPS-123, 4711)"
    )
    history: list[HistoryView] | None = Field(default=None, exclude_if=lambda value: value is None)

    @classmethod
    def from_columns(cls, row: Mapping[Any, Any], history: Sequence[Mapping[Any, Any]] | None = None) -> TicketView:
        """Build from a `tickets` row's columns (a result mapping, or `TicketRow.values()`)."""
        sla = SlaView(
            respond_by=row["respond_by"],
            resolve_by=row["resolve_by"],
            response_breached=row["response_breached"],
            resolution_breached=row["resolution_breached"],
        )
        fields = {name: row[name] for name in cls.model_fields if name in row}
        return cls.model_validate(
            {
                **fields,
                "number": ticket_number(row["id"]),
                "sla": sla,
                "history": None if history is None else [HistoryView.model_validate(dict(h)) for h in history],
            }
        )
