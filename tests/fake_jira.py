"""A Jira on 127.0.0.1 speaking REST v3 (Cloud, ADF bodies) and v2 (Data Center, plain text) as documented.

`/rest/api/3/search/jql?jql=` on Cloud (`/rest/api/3/search` is 410 Gone), `/rest/api/2/search?jql=` on Data
Center (the `labels = "…"` clause), `POST …/issue` (201 `{"id", "key", "self"}`),
`PUT …/issue/{key}` (204), `POST …/issue/{key}/comment` (201), `GET|POST …/issue/{key}/transitions` (a To Do →
In Progress → Done workflow; 204), `POST …/issueLink` (201). Basic auth (e-mail:API token) or Bearer (PAT);
errors as `{"errorMessages": [...], "errors": {}}`. Can lose a create's answer and answer queued failures.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_tracker import FakeTracker, Handler

STATUSES = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
TRANSITIONS = {"11": "To Do", "21": "In Progress", "31": "Done"}


@dataclass
class Issue:
    id: str
    key: str
    fields: dict[str, Any]
    status: str = "To Do"
    comments: list[Any] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


@dataclass
class FakeJira(FakeTracker):
    version: int = 3
    user: str | None = "ops@example.com"  # None: Bearer PAT (Data Center)
    token: str = "ATATT3xFfGF0-token"
    issues: list[Issue] = field(default_factory=list)

    def routes(self, app: web.Application, guarded: Callable[[Handler], Handler]) -> None:
        api = f"/rest/api/{self.version}"
        if self.version == 3:  # Cloud: the enhanced JQL search; the old one is gone
            app.router.add_get(f"{api}/search/jql", guarded(self._search))
            app.router.add_get(f"{api}/search", guarded(self._gone))
        else:
            app.router.add_get(f"{api}/search", guarded(self._search))
        app.router.add_post(f"{api}/issue", guarded(self._create))
        app.router.add_put(f"{api}/issue/{{key}}", guarded(self._edit))
        app.router.add_post(f"{api}/issue/{{key}}/comment", guarded(self._comment))
        app.router.add_get(f"{api}/issue/{{key}}/transitions", guarded(self._transitions))
        app.router.add_post(f"{api}/issue/{{key}}/transitions", guarded(self._transition))
        app.router.add_post(f"{api}/issueLink", guarded(self._link))

    def refusal(self, status: int, headers: dict[str, str]) -> web.Response:
        return _errors(status, "Rate limit exceeded" if status == 429 else "Service unavailable", headers)

    def unauthenticated(self) -> web.Response:
        return _errors(401, "You are not authenticated. Authentication required to perform this operation.")

    def authorized(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if self.user is None:
            return scheme == "Bearer" and value == self.token
        return scheme == "Basic" and base64.b64decode(value).decode() == f"{self.user}:{self.token}"

    def _issue(self, key: str) -> Issue | None:
        return next((i for i in self.issues if i.key == key), None)

    async def _search(self, request: web.Request) -> web.Response:
        found = re.search(r'labels = "([^"]+)"', request.query.get("jql", ""))
        issues = [i for i in self.issues if found is None or found[1] in i.fields.get("labels", [])]
        limit = int(request.query.get("maxResults", "50"))
        rows = [{"id": i.id, "key": i.key, "fields": {"status": {"name": i.status}}} for i in issues[:limit]]
        if self.version == 3:
            return web.json_response({"issues": rows, "isLast": len(issues) <= limit})
        return web.json_response({"startAt": 0, "maxResults": limit, "total": len(issues), "issues": rows})

    async def _gone(self, request: web.Request) -> web.Response:
        return _errors(410, "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.")

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fields = body["fields"]
        if self.version == 3 and not isinstance(fields.get("description", {}), dict):
            return _errors(400, None, errors={"description": "Operation value must be an Atlassian Document"})
        number = len(self.issues) + 1
        issue = Issue(str(10000 + number), f"{fields['project']['key']}-{number}", fields)
        self.issues.append(issue)
        lost = await self.created(request)
        if lost is not None:
            return lost
        return web.json_response({"id": issue.id, "key": issue.key, "self": f"{self.url}/issue/{issue.id}"}, status=201)

    async def _edit(self, request: web.Request) -> web.Response:
        issue = self._issue(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist or you do not have permission to see it.")
        issue.fields.update((await request.json())["fields"])
        return web.Response(status=204)

    async def _comment(self, request: web.Request) -> web.Response:
        issue = self._issue(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist or you do not have permission to see it.")
        body = (await request.json())["body"]
        if self.version == 3 and not isinstance(body, dict):
            return _errors(400, None, errors={"comment": "Comment body is not valid!"})
        issue.comments.append(body)
        return web.json_response({"id": str(len(issue.comments)), "body": body}, status=201)

    async def _transitions(self, request: web.Request) -> web.Response:
        issue = self._issue(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist or you do not have permission to see it.")
        offered = [
            {"id": tid, "name": name, "to": {"name": name, "statusCategory": {"key": STATUSES[name]}}}
            for tid, name in TRANSITIONS.items()
            if name != issue.status
        ]
        return web.json_response({"expand": "transitions", "transitions": offered})

    async def _transition(self, request: web.Request) -> web.Response:
        issue = self._issue(request.match_info["key"])
        tid = (await request.json())["transition"]["id"]
        if issue is None or tid not in TRANSITIONS or TRANSITIONS[tid] == issue.status:
            return _errors(400, "Transition id is not valid for this issue.")
        issue.status = TRANSITIONS[tid]
        return web.Response(status=204)

    async def _link(self, request: web.Request) -> web.Response:
        body = await request.json()
        issue = self._issue(body["inwardIssue"]["key"])
        if issue is None:
            return _errors(404, "Issue does not exist.")
        issue.links.append(f"{body['type']['name']} {body['outwardIssue']['key']}")
        return web.Response(status=201)


def _errors(
    status: int, message: str | None, headers: dict[str, str] | None = None, errors: dict[str, str] | None = None
) -> web.Response:
    body = {"errorMessages": [message] if message else [], "errors": errors or {}}
    return web.json_response(body, status=status, headers=headers)
