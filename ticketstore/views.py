"""The ticket API's JSON, as pydantic models: what operators read (CONTRACT §4) and what they send.

These models are the single description of the wire format: the API serializes them, the OpenAPI document is
generated from them, and a notification can embed the same `TicketView`. Times are aware UTC datetimes, written
ISO 8601 with `Z`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from normalizers.schema import Severity, Source
from ticketstore.ticket import ticket_number

Status = Literal["open", "in_progress", "waiting", "resolved", "closed"]

Name = Annotated[str, Field(min_length=1, max_length=255)]


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


class TicketPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    tickets: list[TicketView] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class Stats(BaseModel):
    """Counts over every ticket; the means over the tickets that reached that point."""

    model_config = ConfigDict(frozen=True)

    total: int
    by_status: dict[str, int] = Field(description="every status, 0 included")
    by_severity: dict[str, int] = Field(description="current severity, every level, 0 included")
    acknowledged: int = Field(description="tickets with an acknowledgement (the MTTA sample)")
    mtta_seconds: float | None = Field(description="mean time from first_seen to acknowledged_at; null: none yet")
    resolved: int = Field(description="tickets with a resolution (the MTTR sample)")
    mttr_seconds: float | None = Field(description="mean time from first_seen to resolved_at; null: none yet")
    with_sla: int = Field(description="tickets that had a response or resolution deadline")
    sla_breached: int = Field(description="of those, tickets that breached one")
    sla_breach_ratio: float | None = Field(description="sla_breached / with_sla; null when with_sla is 0")


# --- request bodies ---------------------------------------------------------------------------------------
#
# `by` names the operator only when the API is open; with tokens configured the token's name is the actor.


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class ActorBody(_Body):
    """Body of /resolve and /close (optional: the actor defaults to `operator` on an open API)."""

    by: Name | None = None


class AcknowledgeBody(_Body):
    """`by` is required on an open API; with tokens the body may be empty."""

    by: Name | None = None


class AssignBody(_Body):
    """At least one of `group` and `assignee`. An absent `group` keeps the group; an absent or null `assignee`
    leaves no person assigned (a new group picks its own)."""

    group: Name | None = None
    assignee: Name | None = None
    by: Name | None = None

    @model_validator(mode="after")
    def _says_something(self) -> AssignBody:
        if not {"group", "assignee"} & self.model_fields_set:
            raise ValueError("give a group, an assignee, or both")
        return self


class CommentBody(_Body):
    """`by` is required on an open API."""

    text: str = Field(min_length=1, max_length=10_000)
    by: Name | None = None


class StatusBody(_Body):
    status: Status
    by: Name | None = None
