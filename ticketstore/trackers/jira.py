"""Jira (Cloud REST v3 with ADF bodies, Data Center REST v2 with plain text): one issue per ticket, labelled
`alertdesk-<ticket number>` and found by JQL before every create.

Search is `/search/jql` on Cloud (its old `/search` answers 410 Gone) and `/search` on Data Center (REST v2).
Cloud signs in with the account e-mail and an API token (basic auth), Data Center with a personal access token
(Bearer) when no `user` is given. Priority names come from the policy (`priorities`, default Highest … Lowest).
Acknowledgement moves the issue to an "in progress" status, resolution to a "done" one, each by the transition the
workflow offers (looked up, never assumed); the rest are comments, each starting with MARK so the webhook's echo of
them is recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ticketstore.tracker_policy import Tracker
from ticketstore.trackers import base
from ticketstore.trackers.base import Remote, RemoteChange, Synced, TrackerEvent, basic_auth

MARK = "[alertdesk]"
LABEL = "alertdesk"


def label(number: str) -> str:
    return f"{LABEL}-{number}"


class Jira:
    title = "Jira issue"

    def __init__(self, name: str, remote: Remote) -> None:
        self.name = name
        self._remote = remote
        self._config = remote.config
        self._api = f"/rest/api/{self._config.jira_version}"
        # Jira Cloud removed /search (410 Gone since 2025) for /search/jql; Data Center keeps /search
        self._search = (
            "search" if self._config.flavour == "datacenter" or self._config.jira_version == 2 else "search/jql"
        )

    async def sync(self, event: TrackerEvent) -> Synced:
        key = await self.find(event.number)
        created = key is None
        if key is None:
            key = await self._create(event)
        if event.kind != "opened":
            await self._follow(key, event)
        return Synced(key, created)

    async def find(self, number: str) -> str | None:
        jql = f'project = "{self._config.project}" AND labels = "{label(number)}" ORDER BY created ASC'
        params = {"jql": jql, "fields": "status", "maxResults": "1"}
        found = await self._call("GET", f"{self._api}/{self._search}", params=params)
        issues = found.get("issues") or []
        return str(issues[0].get("key") or issues[0]["id"]) if issues else None  # both name it in /issue/{…}

    async def _create(self, event: TrackerEvent) -> str:
        ticket = event.ticket
        lines = base.record_text(event, "alertdesk")
        fields = {
            "project": {"key": self._config.project},
            "issuetype": {"name": self._config.issue_type},
            "summary": ticket["title"][:255],
            "description": self._text(lines),
            "labels": [LABEL, label(event.number)],
            "priority": {"name": self._config.priority_name(ticket["priority"])},
        }
        created = await self._call("POST", f"{self._api}/issue", body={"fields": fields})
        key = str(created["key"])
        previous = await base.previous_record(event, self.find)
        if previous is not None:
            link = {"type": {"name": "Relates"}, "inwardIssue": {"key": key}, "outwardIssue": {"key": previous}}
            await self._call("POST", f"{self._api}/issueLink", body=link)
        return key

    async def _follow(self, key: str, event: TrackerEvent) -> None:
        by = f" by {event.actor}" if event.actor else ""
        text = f"{MARK} {event.kind.replace('_', ' ')}{by}: {event.detail}".rstrip(": ")
        if event.kind in ("severity_raised", "severity_lowered"):
            priority = {"priority": {"name": self._config.priority_name(event.ticket["priority"])}}
            await self._call("PUT", f"{self._api}/issue/{key}", body={"fields": priority})
        elif event.kind == "acknowledged":
            await self._transition(key, "indeterminate")
        elif event.kind in ("resolved", "closed"):
            await self._transition(key, "done")
        await self._call("POST", f"{self._api}/issue/{key}/comment", body={"body": self._text([text])})

    async def _transition(self, key: str, category: str) -> None:
        """Take the workflow's first transition into a status of that category; none offered: already there."""
        offered = await self._call("GET", f"{self._api}/issue/{key}/transitions")
        for transition in offered.get("transitions", []):
            if transition.get("to", {}).get("statusCategory", {}).get("key") == category:
                await self._call(
                    "POST", f"{self._api}/issue/{key}/transitions", body={"transition": {"id": transition["id"]}}
                )
                return

    def _text(self, paragraphs: list[str]) -> Any:
        """Plain text for REST v2; an Atlassian Document Format document for v3."""
        paragraphs = [p for p in paragraphs]
        if self._config.jira_version == 2:
            return "\n\n".join(paragraphs)
        return {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs],
        }

    async def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        secret = self._remote.secret()
        auth = basic_auth(self._config.user, secret) if self._config.user else f"Bearer {secret}"
        answer = await self._remote.call(method, path, auth=auth, params=params, body=body)
        return answer if isinstance(answer, dict) else {}


# --- the webhook ----------------------------------------------------------------------------------------------


class _User(BaseModel):
    model_config = ConfigDict(frozen=True)

    accountId: str | None = None
    name: str | None = None  # Data Center
    emailAddress: str | None = None
    displayName: str | None = None

    def is_(self, user: str | None) -> bool:
        return user is not None and user in (self.accountId, self.name, self.emailAddress)

    @property
    def person(self) -> str:
        return self.displayName or self.name or self.emailAddress or self.accountId or "jira"


class _Item(BaseModel):
    field: str
    to: str | None = None
    toString: str | None = None


class _Changelog(BaseModel):
    id: str
    items: list[_Item] = []


class _Status(BaseModel):
    statusCategory: dict[str, Any] = {}


class _Fields(BaseModel):
    labels: list[str] = []
    status: _Status | None = None


class _Issue(BaseModel):
    id: str
    key: str
    fields: _Fields


class _Comment(BaseModel):
    id: str
    body: Any = None  # text (v2) or an ADF document (v3)
    author: _User | None = None


class IssueUpdated(BaseModel):
    """Jira's `jira:issue_updated` webhook body (the parts alertdesk reads)."""

    model_config = ConfigDict(frozen=True)

    webhookEvent: str = Field(pattern=r"^jira:issue_updated$")
    timestamp: int
    user: _User
    issue: _Issue
    changelog: _Changelog | None = None
    comment: _Comment | None = None


def jira_change(body: Mapping[str, Any], config: Tracker) -> RemoteChange | None:
    """Read the webhook; None for alertdesk's own changes (its user, or a comment carrying MARK)."""
    event = IssueUpdated.model_validate(body)
    if event.user.is_(config.user):
        return None
    numbers = [lb.removeprefix(f"{LABEL}-") for lb in event.issue.fields.labels if lb.startswith(f"{LABEL}-")]
    if not numbers:
        return None  # not an issue alertdesk made
    items = event.changelog.items if event.changelog else []
    status = next((i for i in items if i.field == "status"), None)
    category = (event.issue.fields.status.statusCategory.get("key") if event.issue.fields.status else None) or ""
    assignee = next((i for i in items if i.field == "assignee"), None)
    comment = event.comment
    text = _plain(comment.body).strip() if comment is not None else ""
    if text.startswith(MARK) or (
        comment is not None and comment.author is not None and comment.author.is_(config.user)
    ):
        text = ""
    if status is None and assignee is None and not text:
        return None
    event_id = event.changelog.id if event.changelog else f"comment:{comment.id if comment else event.timestamp}"
    return RemoteChange(
        event_id=f"{event.issue.id}:{event_id}",
        number=numbers[0],
        person=event.user.person,
        acknowledged=status is not None and category == "indeterminate",
        resolved=status is not None and category == "done",
        assigned=assignee is not None,
        assignee=assignee.toString if assignee else None,
        comment=text or None,
    )


def _plain(body: Any) -> str:
    """The text of a v2 string or a v3 ADF document."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        own = body.get("text") if isinstance(body.get("text"), str) else ""
        inner = [_plain(child) for child in body.get("content", [])]
        joiner = "\n" if body.get("type") == "doc" else ""
        return str(own) + joiner.join(inner)
    return ""
