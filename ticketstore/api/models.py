"""The ticket API's own JSON beyond the ticket itself: a page of tickets, the statistics, the request bodies.

With `ticketstore.view.TicketView` these models are the single description of the wire format: the API serializes
them and the OpenAPI document is generated from them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ticketstore.view import Status, TicketView

Name = Annotated[str, Field(min_length=1, max_length=255)]


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
