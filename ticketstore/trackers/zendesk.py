"""Zendesk (Tickets API): one ticket per alertdesk ticket, found by `external_id` = the ticket number.

Signs in as an agent with an API token (`{email}/token:{token}`, basic auth). Priority: P1 urgent, P2 high,
P3 normal, P4 and P5 low (the policy's `priorities` may rename them). Acknowledgement sets status `open`,
resolution `solved`; the rest are private comments (internal notes) starting with MARK, so a trigger's echo of
them is recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ticketstore.tracker_policy import Tracker
from ticketstore.trackers import base
from ticketstore.trackers.base import Remote, RemoteChange, Synced, TrackerEvent, basic_auth

MARK = "[alertdesk]"
TICKETS = "/api/v2/tickets"


class Zendesk:
    title = "Zendesk ticket"

    def __init__(self, name: str, remote: Remote) -> None:
        self.name = name
        self._remote = remote
        self._config = remote.config

    async def sync(self, event: TrackerEvent) -> Synced:
        found = await self.find(event.number)
        created = found is None
        key = found if found is not None else await self._create(event)
        if event.kind != "opened":
            await self._call("PUT", f"{TICKETS}/{key}.json", body={"ticket": self._update(event)})
        return Synced(key, created)

    async def find(self, number: str) -> str | None:
        found = await self._call("GET", f"{TICKETS}.json", params={"external_id": number})
        tickets = found.get("tickets") or []
        return str(tickets[0]["id"]) if tickets else None

    async def _create(self, event: TrackerEvent) -> str:
        ticket = event.ticket
        lines = base.record_text(event, MARK)
        previous = await base.previous_record(event, self.find)
        if previous is not None:
            lines.append(f"Follows Zendesk ticket #{previous} (alertdesk {event.previous_number})")
        body = {
            "ticket": {
                "subject": ticket["title"][:255],
                "comment": {"body": "\n".join(lines), "public": False},
                "type": "incident",
                "priority": self._config.priority_name(ticket["priority"]),
                "external_id": event.number,
                "tags": ["alertdesk"],
            }
        }
        created = await self._call("POST", f"{TICKETS}.json", body=body)
        return str(created["ticket"]["id"])

    def _update(self, event: TrackerEvent) -> dict[str, Any]:
        by = f" by {event.actor}" if event.actor else ""
        note = {
            "comment": {
                "body": f"{MARK} {event.kind.replace('_', ' ')}{by}: {event.detail}".rstrip(": "),
                "public": False,
            }
        }
        match event.kind:
            case "severity_raised" | "severity_lowered":
                return {**note, "priority": self._config.priority_name(event.ticket["priority"])}
            case "acknowledged" | "reopened":
                return {**note, "status": "open"}
            case "resolved" | "closed":
                return {**note, "status": "solved"}
        return note

    async def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        auth = basic_auth(f"{self._config.user}/token", self._remote.secret())
        answer = await self._remote.call(method, path, auth=auth, params=params, body=body)
        return answer if isinstance(answer, dict) else {}


class TriggerEvent(BaseModel):
    """The body of the triggers of deploy/trackers/zendesk.md (Zendesk placeholders filled in)."""

    model_config = ConfigDict(frozen=True)

    event: Literal["update", "comment"]
    ticket_id: str = Field(min_length=1)
    external_id: str = Field(min_length=1)
    updated_at: str = Field(min_length=1)  # {{ticket.updated_at_with_timestamp}}: one per change
    status: str = ""
    assignee: str = ""
    group: str = ""
    updated_by: str = Field(min_length=1)  # {{current_user.email}}
    updated_by_name: str = ""
    comment: str = ""


def zendesk_change(body: Mapping[str, Any], config: Tracker) -> RemoteChange | None:
    """Read a trigger's body; None for alertdesk's own changes (its agent, or a comment carrying MARK)."""
    event = TriggerEvent.model_validate(body)
    if event.updated_by == config.user:
        return None
    comment = event.comment.strip() if event.event == "comment" else ""
    if event.event == "comment" and (not comment or comment.startswith(MARK)):
        return None
    update = event.event == "update"
    return RemoteChange(
        event_id=f"{event.ticket_id}:{event.updated_at}:{event.event}",
        number=event.external_id,
        person=event.updated_by_name or event.updated_by,
        acknowledged=update and event.status == "open",
        resolved=update and event.status in ("solved", "closed"),
        assigned=update and bool(event.assignee or event.group),
        group=event.group or None,
        assignee=event.assignee or None,
        comment=comment or None,
    )
