"""A ServiceNow instance on 127.0.0.1 speaking the Table API for `incident`, as its documentation describes it.

Basic auth (401 with ServiceNow's error body otherwise); `GET /api/now/table/incident?sysparm_query=…` answers
`{"result": [...]}`; `POST` creates (201) and `PATCH …/{sys_id}` updates (200), both `{"result": {...}}`; work
notes and comments are journal entries. Tests drive it into failures: answers queued up front (429 with
Retry-After, 503), a create whose answer is lost (the record is made, the connection dropped), a slow or held
server, and a password that changes.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_tracker import FakeTracker, Handler

INCIDENTS = "/api/now/table/incident"


@dataclass
class Incident:
    fields: dict[str, Any]
    work_notes: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


@dataclass
class FakeServiceNow(FakeTracker):
    user: str = "alertdesk.integration"
    password: str = "s3cret-1"
    incidents: list[Incident] = field(default_factory=list)
    hibernating: int = 0  # answers of a hibernating instance: 200 with an HTML page
    empty_create_answers: int = 0  # creates answered `{"result": {}}`

    def routes(self, app: web.Application, guarded: Callable[[Handler], Handler]) -> None:
        app.router.add_get(INCIDENTS, guarded(self._list))
        app.router.add_post(INCIDENTS, guarded(self._create))
        app.router.add_patch(INCIDENTS + "/{sys_id}", guarded(self._update))

    def by_correlation(self, correlation_id: str) -> list[Incident]:
        return [i for i in self.incidents if i.fields["correlation_id"] == correlation_id]

    # --- the API ----------------------------------------------------------------------------------------------

    def intercept(self, request: web.Request) -> web.Response | None:
        if not self.hibernating:
            return None
        self.hibernating -= 1
        return web.Response(text="<html><body>Your instance is hibernating</body></html>", content_type="text/html")

    def refusal(self, status: int, headers: dict[str, str]) -> web.Response:
        return _failure(status, "Too many requests" if status == 429 else "Service Unavailable", headers)

    def unauthenticated(self) -> web.Response:
        return _failure(401, "User Not Authenticated", {"WWW-Authenticate": 'Basic realm="Service-now"'})

    def authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        return base64.b64decode(encoded).decode() == f"{self.user}:{self.password}"

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query.get("sysparm_query", "")
        match = re.match(r"correlation_id=([^^]*)", query)
        found = [i for i in self.incidents if match is None or i.fields["correlation_id"] == match[1]]
        limit = int(request.query.get("sysparm_limit", "10000"))
        wanted = request.query.get("sysparm_fields")
        rows = [_only(i.fields, wanted) for i in found[:limit]]
        return web.json_response({"result": rows})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        incident = Incident(
            {
                "sys_id": uuid.uuid4().hex,
                "number": f"INC{10001 + len(self.incidents):07d}",
                "state": "1",
                "correlation_id": "",
                "sys_updated_by": self.user,
                **{k: v for k, v in body.items() if k not in ("work_notes", "comments")},
            }
        )
        _journal(incident, body)
        self.incidents.append(incident)
        lost = await self.created(request)
        if lost is not None:
            return lost
        if self.empty_create_answers:
            self.empty_create_answers -= 1
            return web.json_response({"result": {}}, status=201)
        return web.json_response({"result": incident.fields}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        found = [i for i in self.incidents if i.fields["sys_id"] == request.match_info["sys_id"]]
        if not found:
            return _failure(404, "No Record found", {}, "Record doesn't exist or ACL restricts the record retrieval")
        body = await request.json()
        found[0].fields.update({k: v for k, v in body.items() if k not in ("work_notes", "comments")})
        _journal(found[0], body)
        return web.json_response({"result": found[0].fields})


def _journal(incident: Incident, body: dict[str, Any]) -> None:
    if body.get("work_notes"):
        incident.work_notes.append(body["work_notes"])
    if body.get("comments"):
        incident.comments.append(body["comments"])


def _only(fields: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    if not wanted:
        return dict(fields)
    return {name: fields.get(name, "") for name in wanted.split(",")}


def _failure(status: int, message: str, headers: dict[str, str], detail: str | None = None) -> web.Response:
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return web.json_response(body, status=status, headers=headers)
