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
from aiohttp.test_utils import TestServer

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
class FakeJira:
    port: int
    version: int = 3
    user: str | None = "ops@example.com"  # None: Bearer PAT (Data Center)
    token: str = "ATATT3xFfGF0-token"
    issues: list[Issue] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    queued: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lose_create_answers: int = 0
    server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeJira:
        api = f"/rest/api/{self.version}"
        app = web.Application()
        if self.version == 3:  # Cloud: the enhanced JQL search; the old one is gone
            app.router.add_get(f"{api}/search/jql", self._guarded(self._search))
            app.router.add_get(f"{api}/search", self._guarded(self._gone))
        else:
            app.router.add_get(f"{api}/search", self._guarded(self._search))
        app.router.add_post(f"{api}/issue", self._guarded(self._create))
        app.router.add_put(f"{api}/issue/{{key}}", self._guarded(self._edit))
        app.router.add_post(f"{api}/issue/{{key}}/comment", self._guarded(self._comment))
        app.router.add_get(f"{api}/issue/{{key}}/transitions", self._guarded(self._transitions))
        app.router.add_post(f"{api}/issue/{{key}}/transitions", self._guarded(self._transition))
        app.router.add_post(f"{api}/issueLink", self._guarded(self._link))
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()

    def _guarded(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def run(request: web.Request) -> web.StreamResponse:
            if self.queued:
                status, headers = self.queued.pop(0)
                self.requests.append((request.method, request.path, status))
                return _errors(status, "Rate limit exceeded" if status == 429 else "Service unavailable", headers)
            if not self._authorized(request):
                self.requests.append((request.method, request.path, 401))
                return _errors(401, "You are not authenticated. Authentication required to perform this operation.")
            answer: web.StreamResponse = await handler(request)
            self.requests.append((request.method, request.path, answer.status))
            return answer

        return run

    def _authorized(self, request: web.Request) -> bool:
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
        if self.lose_create_answers:
            self.lose_create_answers -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=201)
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
