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
from aiohttp.test_utils import TestServer


@dataclass
class Ticket:
    fields: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeZendesk:
    port: int
    email: str = "ops@example.com"
    token: str = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"
    tickets: list[Ticket] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    queued: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lose_create_answers: int = 0
    server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeZendesk:
        app = web.Application()
        app.router.add_get("/api/v2/tickets.json", self._guarded(self._list))
        app.router.add_post("/api/v2/tickets.json", self._guarded(self._create))
        app.router.add_put("/api/v2/tickets/{id:\\d+}.json", self._guarded(self._update))
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
                return web.json_response({"error": "APIRateLimitExceeded"}, status=status, headers=headers)
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            if scheme != "Basic" or base64.b64decode(value).decode() != f"{self.email}/token:{self.token}":
                self.requests.append((request.method, request.path, 401))
                return web.json_response({"error": "Couldn't authenticate you"}, status=401)
            answer: web.StreamResponse = await handler(request)
            self.requests.append((request.method, request.path, answer.status))
            return answer

        return run

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
        if self.lose_create_answers:
            self.lose_create_answers -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=201)
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
