"""The operators' ticket API (CONTRACT §4): read tickets and statistics, act on a ticket.

Who may do what: with `tokens` configured, an action needs one of them as `Authorization: Bearer …` and the
actor recorded in the history is the name bound to that token, whatever the body says — an operator cannot act
under someone else's name. Reads need a token as soon as any token is configured; read-only tokens can read,
never act. With no token at all the API is open and the body's `by` names the actor.

Every answer is JSON; errors share the webhooks' shape `{"error": …, "detail": …}`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from normalizers.schema import Severity, Source, Unavailable
from ticketstore import actions
from ticketstore.actions import Action, Conflict, TicketNotFound
from ticketstore.api.maintenance import WindowList, WindowView, list_parameters
from ticketstore.api.models import AcknowledgeBody, ActorBody, AssignBody, CommentBody, StatusBody
from ticketstore.api.openapi import openapi_document
from ticketstore.api.queries import DEFAULT_LIMIT, MAX_LIMIT, TicketFilters, TicketQueries
from ticketstore.maintenance import InvalidWindow, Window, WindowNotFound, WindowRequest
from ticketstore.store import TicketStore
from ticketstore.ticket import STATUSES
from ticketstore.windows import MaintenanceWindows, WindowAlreadyEnded

logger = logging.getLogger(__name__)

Body = TypeVar("Body", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.Response]]

DEFAULT_ACTOR = "operator"
RETRY_AFTER_S = 5
_TICKET = r"/api/tickets/{id:\d{1,18}}"
_NUL = "\x00"
_WINDOW = r"/api/maintenance/{id:\d{1,18}}"
_LIST_PARAMETERS = frozenset({"status", "severity", "source", "host", "dedup_key", "q", "limit", "cursor"})


@dataclass(frozen=True)
class ApiConfig:
    """`tokens`: token → name of the operator bound to it (empty: open API). `read_tokens`: read-only extras."""

    tokens: Mapping[str, str] = field(default_factory=dict)
    read_tokens: frozenset[str] = frozenset()


def ticket_api(store: TicketStore, queries: TicketQueries, config: ApiConfig) -> list[web.RouteDef]:
    api = _TicketApi(store, queries, config)
    return [
        web.get("/api/tickets", _answering(api.list_tickets)),
        web.get(_TICKET, _answering(api.get_ticket)),
        web.post(f"{_TICKET}/acknowledge", _answering(api.acknowledge)),
        web.post(f"{_TICKET}/assign", _answering(api.assign)),
        web.post(f"{_TICKET}/comment", _answering(api.comment)),
        web.post(f"{_TICKET}/status", _answering(api.status)),
        web.post(f"{_TICKET}/resolve", _answering(api.resolve)),
        web.post(f"{_TICKET}/close", _answering(api.close)),
        web.get("/api/stats", _answering(api.stats)),
        web.post("/api/maintenance", _answering(api.create_window)),
        web.get("/api/maintenance", _answering(api.list_windows)),
        web.get(_WINDOW, _answering(api.get_window)),
        web.delete(_WINDOW, _answering(api.end_window)),
        web.get("/api/openapi.json", api.openapi),
    ]


class _Refused(Exception):
    """An error answer: status, JSON body, headers."""

    def __init__(self, status: int, error: str, detail: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.body = {"error": error, "detail": detail}
        self.headers = headers


def _answering(handler: Handler) -> Handler:
    """Turn the domain's refusals into their HTTP answers."""

    async def run(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _Refused as refused:
            return web.json_response(refused.body, status=refused.status, headers=refused.headers)
        except TicketNotFound:
            return web.json_response({"error": "not_found", "detail": "no such ticket"}, status=404)
        except WindowNotFound:
            return web.json_response({"error": "not_found", "detail": "no such maintenance window"}, status=404)
        except (Conflict, WindowAlreadyEnded) as exc:
            return web.json_response({"error": "conflict", "detail": str(exc)}, status=409)
        except InvalidWindow as exc:
            detail = [{"loc": ["body", exc.field], "msg": exc.msg}]
            return web.json_response({"error": "invalid_request", "detail": detail}, status=422)
        except Unavailable as exc:
            logger.warning("ticket API answered 503 on %s %s: %s", request.method, request.path, exc)
            body = {"error": "unavailable", "detail": "the ticket store cannot be reached now"}
            return web.json_response(body, status=503, headers={hdrs.RETRY_AFTER: str(RETRY_AFTER_S)})

    return run


class _TicketApi:
    def __init__(self, store: TicketStore, queries: TicketQueries, config: ApiConfig) -> None:
        self._store = store
        self._queries = queries
        self._operators = dict(config.tokens)
        self._readers = [*config.tokens, *config.read_tokens]
        self._document = openapi_document()
        self._windows = MaintenanceWindows(store)

    # --- reads --------------------------------------------------------------------------------------------

    async def list_tickets(self, request: web.Request) -> web.Response:
        self._authorize_read(request)
        filters, limit, cursor = _list_parameters(request)
        page = await self._queries.list(filters, limit, cursor)
        return _json(page)

    async def get_ticket(self, request: web.Request) -> web.Response:
        self._authorize_read(request)
        ticket = await self._queries.get(_ticket_id(request))
        if ticket is None:
            raise TicketNotFound(request.match_info["id"])
        return _json(ticket)

    async def stats(self, request: web.Request) -> web.Response:
        self._authorize_read(request)
        return _json(await self._queries.stats())

    async def openapi(self, request: web.Request) -> web.Response:
        """Public: the document describes the API, it holds no ticket data."""
        return web.json_response(self._document)

    # --- actions ------------------------------------------------------------------------------------------

    async def acknowledge(self, request: web.Request) -> web.Response:
        bound = self._authorize_action(request)
        body = await _body(request, AcknowledgeBody)
        return await self._act(request, actions.acknowledge(_actor(bound, body.by, required=True)))

    async def assign(self, request: web.Request) -> web.Response:
        bound = self._authorize_action(request)
        body = await _body(request, AssignBody)
        return await self._act(request, actions.assign(_actor(bound, body.by), body.group, body.assignee))

    async def comment(self, request: web.Request) -> web.Response:
        bound = self._authorize_action(request)
        body = await _body(request, CommentBody)
        return await self._act(request, actions.comment(_actor(bound, body.by, required=True), body.text))

    async def status(self, request: web.Request) -> web.Response:
        bound = self._authorize_action(request)
        body = await _body(request, StatusBody)
        return await self._act(request, actions.set_status(_actor(bound, body.by), body.status))

    async def resolve(self, request: web.Request) -> web.Response:
        bound = self._authorize_action(request)
        body = await _body(request, ActorBody)
        return await self._act(request, actions.resolve(_actor(bound, body.by)))

    async def close(self, request: web.Request) -> web.Response:
        bound = self._authorize_action(request)
        body = await _body(request, ActorBody)
        return await self._act(request, actions.close(_actor(bound, body.by)))

    async def _act(self, request: web.Request, action: Action) -> web.Response:
        ticket_id = _ticket_id(request)
        await self._store.act(ticket_id, action)
        ticket = await self._queries.get(ticket_id)
        if ticket is None:  # acted on, then gone: only if someone deleted it in between
            raise TicketNotFound(ticket_id)
        return _json(ticket)

    # --- maintenance windows (CONTRACT §8) -----------------------------------------------------------------

    async def create_window(self, request: web.Request) -> web.Response:
        bound = self._authorize_action(request)
        body = await _body(request, WindowRequest)
        window = await self._windows.create(body, _actor(bound, body.by))
        return self._window(window, status=201)

    async def list_windows(self, request: web.Request) -> web.Response:
        self._authorize_read(request)
        state, errors = list_parameters(request.rel_url.query)
        if errors:
            raise _invalid(errors)
        windows = await self._windows.list(state)
        now, zone = self._store.now(), self._windows.zone
        return _json(WindowList(windows=[WindowView.of(w, now, zone) for w in windows]))

    async def get_window(self, request: web.Request) -> web.Response:
        self._authorize_read(request)
        return self._window(await self._windows.get(int(request.match_info["id"])))

    async def end_window(self, request: web.Request) -> web.Response:
        """End it now; it stays listed as ended, with who ended it."""
        bound = self._authorize_action(request)
        body = await _body(request, ActorBody)
        return self._window(await self._windows.end(int(request.match_info["id"]), _actor(bound, body.by)))

    def _window(self, window: Window, status: int = 200) -> web.Response:
        view = WindowView.of(window, self._store.now(), self._windows.zone)
        return web.json_response(text=view.model_dump_json(), status=status)

    # --- who may ------------------------------------------------------------------------------------------

    def _authorize_read(self, request: web.Request) -> None:
        if self._readers and _matching(_bearer(request), self._readers) is None:
            raise _unauthorized()

    def _authorize_action(self, request: web.Request) -> str | None:
        """The name bound to the request's token; None when the API is open."""
        if not self._operators:
            return None
        presented = _bearer(request)
        token = _matching(presented, self._operators)
        if token is not None:
            return self._operators[token]
        if _matching(presented, self._readers) is not None:
            raise _Refused(403, "forbidden", "this token is read-only")
        raise _unauthorized()


# --- request parsing --------------------------------------------------------------------------------------


def _bearer(request: web.Request) -> str | None:
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def _matching(presented: str | None, tokens: Iterable[str]) -> str | None:
    """The configured token equal to `presented`, comparing with every one in constant time."""
    if presented is None:
        return None
    found = None
    for token in tokens:
        if hmac.compare_digest(presented.encode(errors="surrogateescape"), token.encode()):
            found = token
    return found


def _unauthorized() -> _Refused:
    return _Refused(401, "unauthorized", "a valid Bearer token is required", {hdrs.WWW_AUTHENTICATE: "Bearer"})


def _actor(bound: str | None, by: str | None, *, required: bool = False) -> str:
    """The token's name when there is one; else the body's `by`, required for an acknowledgement or comment."""
    if bound is not None:
        return bound
    if by is not None:
        return by
    if required:
        raise _invalid([{"loc": ["body", "by"], "msg": "Field required: who does it"}])
    return DEFAULT_ACTOR


def _ticket_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def _body(request: web.Request, model: type[Body]) -> Body:
    """The JSON object of the request; an empty body reads as `{}` (a token-bound /acknowledge needs nothing)."""
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise _Refused(400, "malformed_body", [{"loc": ["body"], "msg": f"not valid JSON: {exc}"}]) from None
    if not isinstance(data, dict):
        raise _Refused(400, "malformed_body", [{"loc": ["body"], "msg": "must be a JSON object"}])
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise _invalid([{"loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]) from None
    nul = [name for name, value in body if isinstance(value, str) and _NUL in value]
    if nul:  # PostgreSQL text cannot hold it: refused here, not a 500 from the database
        raise _invalid([{"loc": ["body", name], "msg": "must not contain NUL (\\u0000)"} for name in nul])
    return body


def _list_parameters(request: web.Request) -> tuple[TicketFilters, int, int | None]:
    query = request.rel_url.query
    errors: list[dict[str, Any]] = []

    def words(name: str, allowed: Iterable[str]) -> tuple[str, ...]:
        values = tuple(v for raw in query.getall(name, []) for v in (w.strip() for w in raw.split(",")) if v)
        vocabulary = tuple(allowed)
        unknown = [v for v in values if v not in vocabulary]
        if unknown:
            errors.append({"loc": ["query", name], "msg": f"unknown {', '.join(unknown)}; use {', '.join(vocabulary)}"})
        return values

    def number(name: str, default: int | None, maximum: int, msg: str) -> int | None:
        raw = query.get(name, "").strip()
        if not raw:
            return default
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:  # "¹".isdigit() is True
            errors.append({"loc": ["query", name], "msg": msg})
            return default
        return int(raw)

    def text(name: str) -> str | None:
        return query.get(name, "").strip() or None

    errors.extend(
        {"loc": ["query", name], "msg": "unknown query parameter"}
        for name in dict.fromkeys(query)
        if name not in _LIST_PARAMETERS
    )
    errors.extend(
        {"loc": ["query", name], "msg": "must not contain NUL (\\u0000)"}
        for name in dict.fromkeys(query)
        if name in _LIST_PARAMETERS and any(_NUL in value for value in query.getall(name))
    )
    filters = TicketFilters(
        status=words("status", STATUSES),
        severity=words("severity", (s.value for s in Severity)),
        source=words("source", (s.value for s in Source)),
        host=text("host"),
        dedup_key=text("dedup_key"),
        q=text("q"),
    )
    limit = number("limit", DEFAULT_LIMIT, MAX_LIMIT, f"must be an integer from 1 to {MAX_LIMIT}")
    cursor = number("cursor", None, 2**63 - 1, "not a cursor: pass the next_cursor of the previous page")
    if errors:
        raise _invalid(errors)
    assert limit is not None
    return filters, limit, cursor


def _invalid(detail: list[dict[str, Any]]) -> _Refused:
    return _Refused(422, "invalid_request", detail)


def _json(model: BaseModel) -> web.Response:
    return web.json_response(text=model.model_dump_json())
