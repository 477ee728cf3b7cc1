"""Back from the tracker: `POST /api/trackers/{name}/events` applies a remote person's changes to the ticket.

Each tracker's module reads its own webhook body into a `RemoteChange`; here it is authorised (Bearer = that
tracker's inbound token, compared in constant time, the file read at each request), applied once (the event's id
is kept with the ticket change, in the same transaction) and marked as coming from the tracker, so it is not sent
back to it. A change made by alertdesk's own integration user is recognised and ignored: no ping-pong.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import hdrs, web
from pydantic import ValidationError

from ticketstore.actions import Action, Conflict, TicketNotFound
from ticketstore.policy import Policy
from ticketstore.store import TicketStore
from ticketstore.ticket import TicketRow
from ticketstore.tracker_policy import Tracker
from ticketstore.trackers.base import CallFailed, RemoteChange, read_secret
from ticketstore.trackers.jira import jira_change
from ticketstore.trackers.servicenow import servicenow_change
from ticketstore.trackers.zendesk import zendesk_change

_NUMBER = re.compile(r"^INC-(\d{1,18})$")


Reader = Callable[[Mapping[str, Any], Tracker], RemoteChange | None]
READERS: dict[str, Reader] = {"servicenow": servicenow_change, "jira": jira_change, "zendesk": zendesk_change}
# where each tracker's body carries the alertdesk ticket number, to name it when it is not one
NUMBER_AT: dict[str, list[str]] = {
    "servicenow": ["correlation_id"],
    "jira": ["issue", "fields", "labels"],
    "zendesk": ["external_id"],
}


def tracker_routes(store: TicketStore, policy: Policy, environ: Mapping[str, str]) -> list[web.RouteDef]:
    inbound = _Inbound(store, policy, environ)
    return [web.post("/api/trackers/{name}/events", inbound.handle)]


class _Inbound:
    def __init__(self, store: TicketStore, policy: Policy, environ: Mapping[str, str]) -> None:
        self._store = store
        self._trackers = policy.trackers
        self._environ = environ

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        config = self._trackers.get(name)
        if config is None or config.type not in READERS:
            return _error(404, "not_found", f"no tracker {name!r} takes events here")
        refused = self._authorize(request, config)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            return _error(400, "malformed_body", [{"loc": ["body"], "msg": f"not valid JSON: {exc}"}])
        if not isinstance(body, dict):
            return _error(400, "malformed_body", [{"loc": ["body"], "msg": "must be a JSON object"}])
        try:
            change = READERS[config.type](body, config)
        except ValidationError as exc:
            detail = [{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
            return _error(422, "invalid_request", detail)
        if change is None:
            return web.json_response({"applied": False, "reason": "made by alertdesk itself, or nothing it follows"})
        match = _NUMBER.match(change.number)
        if match is None:
            detail = [
                {"loc": ["body", *NUMBER_AT[config.type]], "msg": f"{change.number!r} is not an alertdesk number"}
            ]
            return _error(422, "invalid_request", detail)
        once = str(uuid.uuid5(uuid.NAMESPACE_URL, f"alertdesk:{name}:{change.event_id}"))
        try:
            applied = await self._store.act(int(match[1]), _action(name, change), once=once)
        except TicketNotFound:
            return _error(404, "not_found", f"no ticket {change.number}")
        except Conflict as exc:
            return _error(409, "conflict", str(exc))
        return web.json_response({"applied": applied, "ticket": change.number})

    def _authorize(self, request: web.Request, config: Tracker) -> web.Response | None:
        secret = config.inbound_secret
        if secret is None:
            return _error(403, "forbidden", "this tracker has no inbound_token_file or inbound_token_env")
        try:
            expected = read_secret(secret, self._environ)
        except CallFailed as exc:
            return _error(503, "unavailable", f"the inbound token cannot be read: {exc}")
        scheme, _, presented = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
        good = scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(errors="surrogateescape"), expected.encode()
        )
        if not good:
            return web.json_response(
                {"error": "unauthorized", "detail": "a valid Bearer token is required"},
                status=401,
                headers={hdrs.WWW_AUTHENTICATE: "Bearer"},
            )
        return None


def _action(name: str, change: RemoteChange) -> Action:
    """The remote person's changes, in the order a person makes them; what no longer applies is left out."""

    def run(ticket: TicketRow, at: datetime, policy: Policy) -> None:
        if ticket.tracker != name:
            raise Conflict(f"ticket {change.number} is not mirrored to tracker {name}")
        ticket.origin = name
        by = change.person
        if change.assigned and (change.assignee, change.group or ticket.assigned_group) != (
            ticket.assignee,
            ticket.assigned_group,
        ):
            ticket.assigned_group = change.group or ticket.assigned_group
            ticket.assignee = change.assignee
            ticket.log(at, "assigned", by, f"group={ticket.assigned_group} assignee={change.assignee or '-'}")
        if change.acknowledged and ticket.status == "open":
            ticket.acknowledge(at, by)
        if change.comment:
            ticket.log(at, "comment", by, change.comment)
        if change.resolved and ticket.active:
            ticket.resolve(at, by, f"resolved in {name}", policy)

    return run


def _error(status: int, error: str, detail: Any) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)
