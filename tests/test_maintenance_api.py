"""`/api/maintenance` (CONTRACT §8) through a real aiohttp server, on SQLite and on the machine's PostgreSQL.

A window is created, listed and ended as an operator would; the tickets it silences are read back through the
ticket API. The clock is the test's (03:00 UTC, Saturday 14 March 2026).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tests.conftest import Clock
from tests.test_api import ALICE, BOB, READER, TOKENS, Desk
from ticketstore.api.queries import TicketQueries
from ticketstore.api.routes import ticket_api
from ticketstore.db import Engines
from ticketstore.escalation.resume import resume_ended
from ticketstore.lifecycle import Lifecycle
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

PATCHING = {"match": {"host": "db*"}, "duration": "2h", "comment": "Patching the database hosts, CHG0042"}


@pytest.fixture
async def desk(engines: Engines, clock: Clock, aiohttp_client: AiohttpClient) -> Desk:
    store = TicketStore(engines, Lifecycle(Policy()), now=clock, windows_every=0)
    app = web.Application()
    app.add_routes(ticket_api(store, TicketQueries(engines), TOKENS))
    return Desk(store, engines, clock, await aiohttp_client(app))


async def delete(desk: Desk, path: str, token: str | None = ALICE, status: int = 200) -> Any:
    response = await desk.client.delete(path, headers={"Authorization": f"Bearer {token}"} if token else None)
    assert response.status == status, await response.text()
    return await response.json()


async def states(desk: Desk, state: str) -> list[int]:
    return [w["id"] for w in (await desk.get(f"/api/maintenance?state={state}"))["windows"]]


async def test_silence_db_hosts_for_two_hours_then_end_it_early(desk: Desk, clock: Clock) -> None:
    created = await desk.post("/api/maintenance", PATCHING, status=201)
    assert {k: created[k] for k in ("id", "state", "match", "created_by", "ends_at", "ended_by")} == {
        "id": 1,
        "state": "active",
        "match": {"host": "db*"},
        "created_by": "alice",  # the token's name
        "ends_at": "2026-03-14T05:00:00Z",
        "ended_by": None,
    }
    assert await states(desk, "active") == [1]

    quiet = await desk.alert("nagios:db-paris-01/PostgreSQL", "db-paris-01", "PostgreSQL is CRITICAL")
    loud = await desk.alert("nagios:web-01/HTTP", "web-01", "HTTP is CRITICAL")
    ticket = await desk.get(f"/api/tickets/{quiet}")
    assert (ticket["status"], ticket["suppressed"]) == ("open", True)
    assert [h["kind"] for h in ticket["history"]] == ["opened", "suppressed"]
    assert "maintenance window 1 (host=db*" in ticket["history"][1]["detail"]
    assert (await desk.get(f"/api/tickets/{loud}"))["suppressed"] is False

    clock.advance(minutes=30)
    ended = await delete(desk, "/api/maintenance/1", token=BOB)
    assert (ended["state"], ended["ended_by"], ended["ended_at"]) == ("ended", "bob", "2026-03-14T03:30:00Z")
    assert (await states(desk, "active"), await states(desk, "ended")) == ([], [1])
    await resume_ended(desk.store)
    ticket = await desk.get(f"/api/tickets/{quiet}")
    assert (ticket["suppressed"], ticket["history"][-1]["kind"]) == (False, "unsuppressed")

    assert (await delete(desk, "/api/maintenance/1", status=409))["error"] == "conflict"
    assert (await delete(desk, "/api/maintenance/99", status=404))["error"] == "not_found"
    assert (await desk.get("/api/maintenance/1"))["ended_by"] == "bob"


async def test_windows_are_listed_by_state(desk: Desk, clock: Clock) -> None:
    await desk.post("/api/maintenance", PATCHING, status=201)
    later = {**PATCHING, "starts_at": "2026-03-14T22:00:00+01:00", "duration": "4h"}
    assert (await desk.post("/api/maintenance", later, status=201))["state"] == "upcoming"
    weekly = {"match": {"service": "Backup*"}, "recurrence": "sun 02:00-04:00", "comment": "weekly backups"}
    standing = await desk.post("/api/maintenance", weekly, status=201)
    assert (standing["ends_at"], standing["recurrence"]) == (
        None,
        {"days": ["sun"], "start": "02:00:00", "end": "04:00:00"},
    )
    assert [w["id"] for w in (await desk.get("/api/maintenance"))["windows"]] == [1, 2, 3]
    assert (await states(desk, "active"), await states(desk, "upcoming"), await states(desk, "ended")) == (
        [1],
        [2, 3],
        [],
    )
    clock.advance(hours=2)
    assert (await states(desk, "active"), await states(desk, "ended")) == ([], [1])


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**PATCHING, "duration": None, "starts_at": "2026-03-14T05:00:00Z", "ends_at": "2026-03-14T04:00:00Z"},
         ["body", "ends_at"]),
        ({**PATCHING, "match": {}}, ["body", "match"]),
        ({**PATCHING, "match": {"hostname": "db*"}}, ["body", "match", "hostname"]),
        ({**PATCHING, "owner": "dba"}, ["body", "owner"]),
        ({**PATCHING, "match": {"host": "db" + "*" * 254}}, ["body", "match", "host"]),
        ({**PATCHING, "duration": "2 hours"}, ["body", "duration"]),
        ({**PATCHING, "starts_at": "2026-03-14T04:00:00"}, ["body", "starts_at"]),  # no time zone
        ({**PATCHING, "recurrence": "sunday night"}, ["body", "recurrence"]),
        ({k: v for k, v in PATCHING.items() if k != "comment"}, ["body", "comment"]),
    ],
)  # fmt: skip
async def test_a_bad_window_is_refused_naming_the_field_and_nothing_is_created(
    desk: Desk, body: dict[str, Any], loc: list[str]
) -> None:
    refused = await desk.post("/api/maintenance", body, status=422)
    assert refused["error"] == "invalid_request"
    assert loc in [d["loc"] for d in refused["detail"]]
    assert (await desk.get("/api/maintenance"))["windows"] == []


async def test_unknown_state_or_parameter_is_refused_naming_it(desk: Desk) -> None:
    refused = await desk.get("/api/maintenance?state=current", status=422)
    assert [d["loc"] for d in refused["detail"]] == [["query", "state"]]
    refused = await desk.get("/api/maintenance?host=db-01", status=422)
    assert [d["loc"] for d in refused["detail"]] == [["query", "host"]]


async def test_creating_and_ending_need_an_operator_token(desk: Desk) -> None:
    await desk.post("/api/maintenance", PATCHING, token=READER, status=403)
    await desk.post("/api/maintenance", PATCHING, token=None, status=401)
    await desk.post("/api/maintenance", PATCHING, status=201)
    await delete(desk, "/api/maintenance/1", token=READER, status=403)
    assert await states(desk, "active") == [1]  # the reader can read
