"""A Zendesk on 127.0.0.1 speaking the Tickets API as documented.

`GET /api/v2/tickets.json?external_id=…` (`{"tickets": [...], "count"}`), `POST /api/v2/tickets.json` (201) and
`PUT /api/v2/tickets/{id}.json` (200), both `{"ticket": {...}, "audit": {...}}`; comments are kept with the ticket.
Basic auth as `{email}/token:{api_token}`; 401 `{"error": "Couldn't authenticate you"}`; 429 with Retry-After.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_tracker import FakeTracker, Handler


@dataclass
class Ticket:
    fields: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeZendesk(FakeTracker):
    email: str = "ops@example.com"
    token: str = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"
    tickets: list[Ticket] = field(default_factory=list)

    def routes(self, app: web.Application, guarded: Callable[[Handler], Handler]) -> None:
        app.router.add_get("/api/v2/tickets.json", guarded(self._list))
        app.router.add_post("/api/v2/tickets.json", guarded(self._create))
        app.router.add_put("/api/v2/tickets/{id:\\d+}.json", guarded(self._update))

    def refusal(self, status: int, headers: dict[str, str]) -> web.Response:
        error = "APIRateLimitExceeded" if status == 429 else "ServiceUnavailable"
        return web.json_response({"error": error, "description": "Try again later"}, status=status, headers=headers)

    def unauthenticated(self) -> web.Response:
        return web.json_response({"error": "Couldn't authenticate you"}, status=401)

    def authorized(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Basic" and base64.b64decode(value).decode() == f"{self.email}/token:{self.token}"

    async def _list(self, request: web.Request) -> web.Response:
        wanted = request.query.get("external_id")
        found = [t.fields for t in self.tickets if wanted is None or t.fields.get("external_id") == wanted]
        return web.json_response({"tickets": found, "next_page": None, "previous_page": None, "count": len(found)})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = (await request.json())["ticket"]
        if not body.get("comment", {}).get("body"):
            details = {"description": [{"description": "Description: cannot be blank", "error": "BlankValue"}]}
            body = {"error": "RecordInvalid", "description": "Record validation errors", "details": details}
            return web.json_response(body, status=422)
        ticket = Ticket(
            {"id": 4711 + len(self.tickets), "status": "new", **{k: v for k, v in body.items() if k != "comment"}},
            [body["comment"]],
        )
        self.tickets.append(ticket)
        lost = await self.created(request)
        if lost is not None:
            return lost
        return web.json_response({"ticket": ticket.fields, "audit": {"events": []}}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        ticket = next((t for t in self.tickets if t.fields["id"] == int(request.match_info["id"])), None)
        if ticket is None:
            return web.json_response({"error": "RecordNotFound", "description": "Not found"}, status=404)
        body = (await request.json())["ticket"]
        ticket.fields.update({k: v for k, v in body.items() if k != "comment"})
        if "comment" in body:
            ticket.comments.append(body["comment"])
        return web.json_response({"ticket": ticket.fields, "audit": {"events": []}})
