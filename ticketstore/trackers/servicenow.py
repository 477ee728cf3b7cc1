"""ServiceNow (Table API, `incident`): one incident per ticket, found by `correlation_id` = the ticket number.

Basic auth with the integration user. Priority is not written: ServiceNow computes it from impact × urgency, which
come from the ticket's priority (`tracker_policy.SERVICENOW_IMPACT_URGENCY`). What alertdesk does goes into the
work notes; resolution sets state 6 (Resolved) with close code and notes, close state 7.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ticketstore.tracker_policy import SERVICENOW_IMPACT_URGENCY, Tracker
from ticketstore.trackers import base
from ticketstore.trackers.base import CallFailed, Remote, RemoteChange, Synced, TrackerEvent, basic_auth

INCIDENTS = "/api/now/table/incident"
NEW, IN_PROGRESS, RESOLVED, CLOSED = "1", "2", "6", "7"
CORRELATION_DISPLAY = "alertdesk"  # the business rule sends back only incidents alertdesk made


class ServiceNow:
    title = "ServiceNow incident"

    def __init__(self, name: str, remote: Remote) -> None:
        self.name = name
        self._remote = remote

    async def sync(self, event: TrackerEvent) -> Synced:
        record = await self.find(event.number)
        created = record is None
        if record is None:
            record = await self._create(event)
        fields = {} if event.kind == "opened" else self._fields(event)
        if fields:
            await self._call("PATCH", f"{INCIDENTS}/{record['sys_id']}", body=fields)
        return Synced(str(record["number"]), created)

    async def find(self, number: str) -> dict[str, Any] | None:
        """The incident whose correlation id is this ticket number: looked up before every create."""
        params = {
            "sysparm_query": f"correlation_id={number}^ORDERBYsys_created_on",
            "sysparm_fields": "sys_id,number,state",
            "sysparm_limit": "1",
        }
        found = (await self._call("GET", INCIDENTS, params=params))["result"]
        return dict(found[0]) if found else None

    async def _create(self, event: TrackerEvent) -> dict[str, Any]:
        ticket = event.ticket
        impact, urgency = SERVICENOW_IMPACT_URGENCY[ticket["priority"]]
        lines = base.record_text(event, "alertdesk")
        previous = await base.previous_record(event, self.find)
        if previous is not None:
            lines.append(f"Follows {previous['number']} (alertdesk {event.previous_number}), same problem before")
        body = {
            "short_description": ticket["title"][:160],
            "description": "\n".join(lines),
            "correlation_id": event.number,
            "correlation_display": CORRELATION_DISPLAY,
            "impact": str(impact),
            "urgency": str(urgency),
        }
        answer = await self._call("POST", INCIDENTS, body=body)
        return dict(answer["result"])

    def _fields(self, event: TrackerEvent) -> dict[str, str]:
        """What an event changes on the incident."""
        by = f" by {event.actor}" if event.actor else ""
        note = {"work_notes": f"alertdesk {event.kind.replace('_', ' ')}{by}: {event.detail}".rstrip(": ")}
        match event.kind:
            case "severity_raised" | "severity_lowered":
                impact, urgency = SERVICENOW_IMPACT_URGENCY[event.ticket["priority"]]
                return {**note, "impact": str(impact), "urgency": str(urgency)}
            case "acknowledged":
                return {**note, "state": IN_PROGRESS}
            case "unacknowledged":
                return {**note, "state": NEW}
            case "reopened":
                return {**note, "state": IN_PROGRESS if event.ticket.get("acknowledged_by") else NEW}
            case "resolved" | "closed":
                notes = f"Resolved in alertdesk{by}: {event.detail}".rstrip(": ")
                state = RESOLVED if event.kind == "resolved" else CLOSED
                return {"state": state, "close_code": self._remote.config.close_code, "close_notes": notes}
        return note

    async def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        auth = basic_auth(self._remote.config.user or "", self._remote.secret())
        answer = await self._remote.call(method, path, auth=auth, params=params, body=body)
        if not isinstance(answer, dict) or "result" not in answer:
            raise CallFailed(f"{method} {path}: no result in ServiceNow's answer")
        return answer


class BusinessRuleEvent(BaseModel):
    """The body the business rule of deploy/trackers/servicenow.md sends after an update of an incident."""

    model_config = ConfigDict(frozen=True)

    sys_id: str = Field(min_length=1)
    sys_mod_count: int = Field(ge=0)  # with sys_id, unique per update: a redelivery is recognised
    number: str
    correlation_id: str = Field(min_length=1)
    state: str
    assigned_to: str = ""  # user_name
    assignment_group: str = ""  # name
    updated_by: str = Field(min_length=1)  # sys_updated_by: the user_name of who made the change
    changed: list[Literal["state", "assigned_to", "assignment_group", "comments", "work_notes"]] = []
    comment: str = ""  # the comment or work note added by this update


def servicenow_change(body: Mapping[str, Any], config: Tracker) -> RemoteChange | None:
    """Read the business rule's body; None when alertdesk's own integration user made the change."""
    event = BusinessRuleEvent.model_validate(body)
    if event.updated_by == config.user:
        return None
    changed = set(event.changed)
    return RemoteChange(
        event_id=f"{event.sys_id}:{event.sys_mod_count}",
        number=event.correlation_id,
        person=event.updated_by,
        acknowledged="state" in changed and event.state == IN_PROGRESS,
        resolved="state" in changed and event.state in (RESOLVED, CLOSED),
        assigned=bool(changed & {"assigned_to", "assignment_group"}),
        group=event.assignment_group or None,
        assignee=event.assigned_to or None,
        comment=event.comment.strip() or None if changed & {"comments", "work_notes"} else None,
    )
