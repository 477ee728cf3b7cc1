"""The OpenAPI 3.1 document of the ticket API, served at `/api/openapi.json`.

The schemas come from the pydantic models the API actually serializes (`views.py`), so they cannot drift from the
answers; the paths are written here, and a test checks them against the routes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from normalizers.schema import Severity, Source
from ticketstore.api.maintenance import WindowList, WindowView
from ticketstore.api.models import (
    AcknowledgeBody,
    ActorBody,
    AssignBody,
    CommentBody,
    Stats,
    StatusBody,
    TicketPage,
)
from ticketstore.api.queries import DEFAULT_LIMIT, MAX_LIMIT
from ticketstore.maintenance import STATES, WindowRequest
from ticketstore.ticket import STATUSES
from ticketstore.view import TicketView

_REF = "#/components/schemas/{model}"
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (TicketView, "serialization"),
    (TicketPage, "serialization"),
    (Stats, "serialization"),
    (ActorBody, "validation"),
    (AcknowledgeBody, "validation"),
    (AssignBody, "validation"),
    (CommentBody, "validation"),
    (StatusBody, "validation"),
    (WindowView, "serialization"),
    (WindowList, "serialization"),
    (WindowRequest, "validation"),
]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "a stable slug: unauthorized, not_found, invalid_request, …"},
        "detail": {
            "description": "400 and 422: the fields at fault; otherwise a sentence",
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg"],
                        "properties": {
                            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "msg": {"type": "string"},
                        },
                    },
                },
            ],
        },
    },
}

_ERRORS = {
    "400": "the body is not a JSON object",
    "401": "a token is configured and the request has no valid `Authorization: Bearer` token",
    "403": "the token is read-only",
    "404": "no such ticket (or maintenance window)",
    "409": "the action does not apply as things are now (e.g. acknowledging a closed ticket, ending an ended window)",
    "413": "the body is larger than 1 MiB",
    "422": "a field or query parameter is missing, unknown or out of range; `detail` names it",
    "503": "the ticket store cannot be reached now; retry after `Retry-After` seconds",
}

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def openapi_document() -> dict[str, Any]:
    _, top = models_json_schema(_MODELS, ref_template=_REF)
    schemas = {**top["$defs"], "Error": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "alertdesk ticket API",
            "version": "1",
            "description": (
                "Operators' API of alertdesk: incident tickets opened from Nagios, Zabbix and SolarWinds alerts. "
                "With ALERTDESK_API_TOKEN set, actions need it as a Bearer token and the history records the "
                "name bound to it; reads accept it or the read-only token. Without tokens the API is open and "
                "the body's `by` names the operator. Times are ISO 8601 UTC."
            ),
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/api/tickets": {"get": _list_tickets()},
            "/api/tickets/{id}": {"get": _get_ticket()},
            "/api/tickets/{id}/acknowledge": {
                "post": _action(
                    "acknowledgeTicket", "Acknowledge: status in_progress, the response clock stops", "AcknowledgeBody"
                )
            },
            "/api/tickets/{id}/assign": {
                "post": _action(
                    "assignTicket",
                    "Assign to a group and/or a person (an absent group is kept; an absent or null assignee "
                    "leaves no person assigned)",
                    "AssignBody",
                )
            },
            "/api/tickets/{id}/comment": {
                "post": _action("commentTicket", "Add a comment to the history", "CommentBody")
            },
            "/api/tickets/{id}/status": {
                "post": _action(
                    "setTicketStatus",
                    "Set the status; a resolved ticket can be reopened, a closed one cannot change",
                    "StatusBody",
                )
            },
            "/api/tickets/{id}/resolve": {
                "post": _action("resolveTicket", "Resolve an active ticket", "ActorBody", optional=True)
            },
            "/api/tickets/{id}/close": {
                "post": _action("closeTicket", "Close the ticket (resolving it if active)", "ActorBody", optional=True)
            },
            "/api/maintenance": {"post": _create_window(), "get": _list_windows()},
            "/api/maintenance/{id}": {"get": _get_window(), "delete": _end_window()},
            "/api/stats": {
                "get": {
                    "operationId": "stats",
                    "summary": "Counts by status and severity, MTTA, MTTR, SLA breach ratio",
                    "responses": {"200": _json("the statistics", "Stats"), **_error_responses("401", "503")},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _list_tickets() -> dict[str, Any]:
    def query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"name": name, "in": "query", "description": description, "schema": schema or {"type": "string"}}

    return {
        "operationId": "listTickets",
        "summary": "List tickets, newest first",
        "parameters": [
            query("status", f"comma-separated: {', '.join(STATUSES)}"),
            query("severity", f"comma-separated: {', '.join(s.value for s in Severity)} (current severity)"),
            query("source", f"comma-separated: {', '.join(s.value for s in Source)}"),
            query("host", "exact host name"),
            query("dedup_key", "exact key, e.g. zabbix:trigger/13491"),
            query("q", "case-insensitive substring of title, description, host, dedup_key or number"),
            query(
                "limit", "page size", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
            ),
            query("cursor", "the next_cursor of the previous page (opaque)"),
        ],
        "responses": {"200": _json("a page of tickets", "TicketPage"), **_error_responses("401", "422", "503")},
    }


def _create_window() -> dict[str, Any]:
    return {
        "operationId": "createMaintenanceWindow",
        "summary": (
            "Silence matching alerts for a time (CONTRACT §8): their tickets open suppressed, clocks paused, no "
            "notification or escalation; when the window is over the tickets still active page once. `match` "
            "takes shell patterns (all given must match); an empty match needs `all: true`. Give `ends_at` or "
            "`duration`; `recurrence` (weekly days and local times in the policy's time zone, or a string like "
            "`sun 02:00-04:00`) makes it recur between `starts_at` and `ends_at` (no end: standing)"
        ),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="WindowRequest")}}},
        },
        "responses": {
            "201": _json("the window, with its id", "WindowView"),
            **_error_responses("400", "401", "403", "413", "422", "503"),
        },
    }


def _list_windows() -> dict[str, Any]:
    return {
        "operationId": "listMaintenanceWindows",
        "summary": "Maintenance windows, oldest first (the newest 200 ended ones)",
        "parameters": [
            {"name": "state", "in": "query", "description": ", ".join(STATES), "schema": {"type": "string"}}
        ],
        "responses": {"200": _json("the windows", "WindowList"), **_error_responses("401", "422", "503")},
    }


def _get_window() -> dict[str, Any]:
    return {
        "operationId": "getMaintenanceWindow",
        "summary": "One maintenance window",
        "parameters": [_ID],
        "responses": {"200": _json("the window", "WindowView"), **_error_responses("401", "404", "503")},
    }


def _end_window() -> dict[str, Any]:
    return {
        "operationId": "endMaintenanceWindow",
        "summary": "End the window now (it stays listed as ended, with who ended it); its tickets resume",
        "parameters": [_ID],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="ActorBody")}}},
        },
        "responses": {
            "200": _json("the window, ended", "WindowView"),
            **_error_responses("400", "401", "403", "404", "409", "413", "422", "503"),
        },
    }


def _get_ticket() -> dict[str, Any]:
    return {
        "operationId": "getTicket",
        "summary": "One ticket with its whole history",
        "parameters": [_ID],
        "responses": {"200": _json("the ticket", "TicketView"), **_error_responses("401", "404", "503")},
    }


def _action(operation_id: str, summary: str, body: str, *, optional: bool = False) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [_ID],
        "requestBody": {
            "required": not optional,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=body)}}},
        },
        "responses": {
            "200": _json("the ticket after the action, with its history", "TicketView"),
            **_error_responses("400", "401", "403", "404", "409", "413", "422", "503"),
        },
    }


def _json(description: str, model: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}


def _error_responses(*codes: str) -> dict[str, Any]:
    return {code: _json(_ERRORS[code], "Error") for code in codes}
