"""The operators' ticket API through a real aiohttp server, on SQLite and on the machine's PostgreSQL.

Tickets are made the way production makes them: alerts applied by the store. The clock is the test's, so the
times in answers (and the MTTA/MTTR computed from them) are known exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import update

from normalizers.schema import Alert, Kind, Severity, Source, TicketCommand
from tests.conftest import Clock
from ticketstore import tables
from ticketstore.api.queries import TicketQueries
from ticketstore.api.routes import ApiConfig, ticket_api
from ticketstore.db import Engines, create_engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

Client = TestClient[web.Request, web.Application]

ALICE = "tok-alice-8f3e2a91c4"
BOB = "tok-bob-51d07be6a2"
READER = "tok-wallboard-0c9d4e"
TOKENS = ApiConfig(tokens={ALICE: "alice", BOB: "bob"}, read_tokens=frozenset({READER}))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Desk:
    """The store, its API client and the clock, as a test drives them."""

    store: TicketStore
    engines: Engines
    clock: Clock
    client: Client

    async def alert(
        self,
        key: str,
        host: str,
        title: str,
        *,
        severity: Severity | None = Severity.CRITICAL,
        kind: Kind = Kind.PROBLEM,
        service: str | None = None,
        description: str = "",
    ) -> int:
        """Apply one alert received now; return the id of the ticket it landed on."""
        source = Source(key.split(":")[0])
        alert = Alert(
            id=str(uuid.uuid4()),
            source=source,
            dedup_key=key,
            kind=kind,
            severity=severity if kind is Kind.PROBLEM else None,
            state_ok=kind is Kind.RECOVERY,
            host=host,
            service=service,
            title=title,
            description=description,
            source_refs={"state": "CRITICAL" if kind is Kind.PROBLEM else "OK"},
            received_at=self.clock(),
        )
        [applied] = await self.store.apply_batch([TicketCommand.single(alert)])
        assert applied.ticket_id is not None
        return applied.ticket_id

    async def get(self, path: str, token: str | None = ALICE, status: int = 200) -> Any:
        response = await self.client.get(path, headers=auth(token) if token else None)
        assert response.status == status, await response.text()
        return await response.json()

    async def post(self, path: str, body: Any = None, token: str | None = ALICE, status: int = 200) -> Any:
        headers = auth(token) if token else None
        response = await self.client.post(path, json=body, headers=headers)
        assert response.status == status, await response.text()
        return await response.json()

    async def keys(self, query: str) -> list[str]:
        page = await self.get(f"/api/tickets?{query}")
        return [ticket["dedup_key"] for ticket in page["tickets"]]


async def make_desk(engines: Engines, clock: Clock, aiohttp_client: AiohttpClient, config: ApiConfig) -> Desk:
    store = TicketStore(engines, Lifecycle(Policy()), now=clock)
    app = web.Application()
    app.add_routes(ticket_api(store, TicketQueries(engines), config))
    return Desk(store, engines, clock, await aiohttp_client(app))


@pytest.fixture
async def desk(engines: Engines, clock: Clock, aiohttp_client: AiohttpClient) -> Desk:
    return await make_desk(engines, clock, aiohttp_client, TOKENS)


@pytest.fixture
async def open_desk(engines: Engines, clock: Clock, aiohttp_client: AiohttpClient) -> Desk:
    return await make_desk(engines, clock, aiohttp_client, ApiConfig())


@pytest.fixture
async def no_db_desk(tmp_path: Path, clock: Clock, aiohttp_client: AiohttpClient) -> AsyncIterator[Desk]:
    """For what is answered before any database access: the engines point at a file never created."""
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'never-created.db'}")
    yield await make_desk(engines, clock, aiohttp_client, TOKENS)
    await engines.dispose()
    assert not (tmp_path / "never-created.db").exists()


async def a_few_tickets(desk: Desk) -> dict[str, int]:
    """Four tickets from the three sources, one resolved; a minute apart, in this order."""
    ids = {
        "disk": await desk.alert(
            "nagios:db-prod-03/Disk /var/lib/pgsql",
            "db-prod-03",
            "Disk /var/lib/pgsql on db-prod-03 is WARNING",
            severity=Severity.WARNING,
            service="Disk /var/lib/pgsql",
            description="DISK WARNING - free space: /var/lib/pgsql 9812 MB (8% inode=97%)",
        )
    }
    desk.clock.advance(minutes=1)
    ids["https"] = await desk.alert(
        "nagios:shop-front-01/HTTPS",
        "shop-front-01",
        "HTTPS on shop-front-01 is CRITICAL",
        service="HTTPS",
        description="HTTP CRITICAL: HTTP/1.1 503 Service Unavailable - 562 bytes in 0.011 second response time",
    )
    desk.clock.advance(minutes=1)
    ids["cpu"] = await desk.alert(
        "zabbix:trigger/13491",
        "mail-relay-02",
        "High CPU utilization (over 90% for 5m)",
        severity=Severity.MAJOR,
        description="Current utilization: 97.3 %",
    )
    desk.clock.advance(minutes=1)
    ids["port"] = await desk.alert(
        "solarwinds:48812",
        "core-sw-01",
        "Interface Gi1/0/24 on core-sw-01 is down",
        severity=Severity.MINOR,
    )
    desk.clock.advance(minutes=1)
    await desk.alert("zabbix:trigger/13491", "mail-relay-02", "Resolved: High CPU utilization", kind=Kind.RECOVERY)
    return ids


# --- reading ----------------------------------------------------------------------------------------------


async def test_list_is_newest_first_with_contract_fields(desk: Desk) -> None:
    ids = await a_few_tickets(desk)
    page = await desk.get("/api/tickets")
    assert [t["id"] for t in page["tickets"]] == [ids["port"], ids["cpu"], ids["https"], ids["disk"]]
    assert page["next_cursor"] is None
    https = page["tickets"][2]
    assert https["number"] == f"INC-{ids['https']:06d}"
    assert https["first_seen"] == "2026-03-14T03:01:00Z"
    assert https["sla"] == {
        "respond_by": "2026-03-14T03:16:00Z",
        "resolve_by": "2026-03-14T07:01:00Z",
        "response_breached": False,
        "resolution_breached": False,
    }
    assert (https["severity"], https["priority"], https["status"]) == ("critical", "P1", "open")
    assert "history" not in https


FILTERS = {
    "status=open": ["solarwinds:48812", "nagios:shop-front-01/HTTPS", "nagios:db-prod-03/Disk /var/lib/pgsql"],
    "status=resolved": ["zabbix:trigger/13491"],
    "status=resolved,closed&status=waiting": ["zabbix:trigger/13491"],
    "severity=critical,major": ["zabbix:trigger/13491", "nagios:shop-front-01/HTTPS"],
    "source=nagios": ["nagios:shop-front-01/HTTPS", "nagios:db-prod-03/Disk /var/lib/pgsql"],
    "host=core-sw-01": ["solarwinds:48812"],
    "dedup_key=zabbix:trigger/13491": ["zabbix:trigger/13491"],
    "source=nagios&severity=warning": ["nagios:db-prod-03/Disk /var/lib/pgsql"],
    "status=&severity=&q=&limit=3": ["solarwinds:48812", "zabbix:trigger/13491", "nagios:shop-front-01/HTTPS"],
    "q=gi1/0/24": ["solarwinds:48812"],  # title, other case
    "q=503 SERVICE": ["nagios:shop-front-01/HTTPS"],  # description
    "q=DB-PROD": ["nagios:db-prod-03/Disk /var/lib/pgsql"],  # host and key
    "q=trigger/134": ["zabbix:trigger/13491"],  # key
    "q=8%25": ["nagios:db-prod-03/Disk /var/lib/pgsql"],  # LIKE wildcards are plain text
    "q=no-such-thing": [],
}


async def test_list_filters_and_search(desk: Desk) -> None:
    await a_few_tickets(desk)
    found = {query: await desk.keys(query) for query in FILTERS}
    assert found == FILTERS


async def test_q_finds_a_ticket_by_its_number(desk: Desk) -> None:
    ids = await a_few_tickets(desk)
    page = await desk.get(f"/api/tickets?q=inc-{ids['cpu']:06d}")
    assert [t["id"] for t in page["tickets"]] == [ids["cpu"]]


async def test_cursor_pages_are_stable_when_tickets_open_between_pages(desk: Desk) -> None:
    first = [await desk.alert(f"nagios:web-{n:02d}", f"web-{n:02d}", f"Host web-{n:02d} is DOWN") for n in range(5)]
    page1 = await desk.get("/api/tickets?limit=2")
    late = [await desk.alert(f"nagios:web-{n:02d}", f"web-{n:02d}", f"Host web-{n:02d} is DOWN") for n in (7, 8)]
    page2 = await desk.get(f"/api/tickets?limit=2&cursor={page1['next_cursor']}")
    page3 = await desk.get(f"/api/tickets?limit=2&cursor={page2['next_cursor']}")
    seen = [t["id"] for page in (page1, page2, page3) for t in page["tickets"]]
    assert seen == first[::-1]
    assert page3["next_cursor"] is None
    assert [t["id"] for t in (await desk.get("/api/tickets?limit=2"))["tickets"]] == late[::-1]


async def test_get_returns_the_ticket_with_its_history_in_order(desk: Desk) -> None:
    key, host = "zabbix:trigger/22817", "pg-replica-02"
    ticket_id = await desk.alert(key, host, "Replication lag is too high (over 300s)", severity=Severity.WARNING)
    desk.clock.advance(minutes=3)
    await desk.alert(key, host, "Replication lag is too high (over 300s)", severity=Severity.MAJOR)
    desk.clock.advance(minutes=2)
    await desk.post(f"/api/tickets/{ticket_id}/acknowledge", token=BOB)

    ticket = await desk.get(f"/api/tickets/{ticket_id}")
    assert (ticket["severity"], ticket["peak_severity"], ticket["priority"]) == ("major", "major", "P2")
    assert (ticket["occurrences"], ticket["status"], ticket["acknowledged_by"]) == (2, "in_progress", "bob")
    assert ticket["acknowledged_at"] == "2026-03-14T03:05:00Z"
    assert [(h["at"], h["kind"], h["actor"]) for h in ticket["history"]] == [
        ("2026-03-14T03:00:00Z", "opened", "zabbix"),
        ("2026-03-14T03:03:00Z", "severity_raised", "zabbix"),
        ("2026-03-14T03:05:00Z", "acknowledged", "bob"),
    ]


async def test_unknown_ticket_is_404(desk: Desk) -> None:
    await desk.alert("nagios:edge-fw-01", "edge-fw-01", "Host edge-fw-01 is DOWN")
    for answer in (
        await desk.get("/api/tickets/4711", status=404),
        await desk.post("/api/tickets/4711/acknowledge", status=404),
        await desk.post("/api/tickets/4711/comment", {"text": "checked the UPS"}, status=404),
    ):
        assert answer["error"] == "not_found"


# --- acting -----------------------------------------------------------------------------------------------


ACTIONS: list[tuple[str, dict[str, str], str, dict[str, str]]] = [
    ("acknowledge", {}, "acknowledged", {"status": "in_progress", "acknowledged_by": "alice"}),
    ("assign", {"group": "dba", "assignee": "k.novak"}, "assigned", {"assigned_group": "dba", "assignee": "k.novak"}),
    ("comment", {"text": "failover to pg-replica-01 started"}, "comment", {"status": "open"}),
    ("status", {"status": "waiting"}, "status", {"status": "waiting"}),
    ("resolve", {}, "resolved", {"status": "resolved", "resolved_at": "2026-03-14T03:10:00Z"}),
    ("close", {}, "closed", {"status": "closed", "closed_at": "2026-03-14T03:10:00Z"}),
]


async def test_each_action_answers_the_ticket_and_records_the_token_name(desk: Desk) -> None:
    tickets = {
        action: await desk.alert(f"nagios:db-prod-0{n}/PostgreSQL", f"db-prod-0{n}", "PostgreSQL is CRITICAL")
        for n, (action, *_) in enumerate(ACTIONS)
    }
    desk.clock.advance(minutes=10)
    for action, body, kind, changed in ACTIONS:
        ticket = await desk.post(f"/api/tickets/{tickets[action]}/{action}", {**body, "by": "mallory"})
        assert {k: ticket[k] for k in changed} == changed, action
        last = ticket["history"][-1]
        assert (last["at"], last["kind"], last["actor"]) == ("2026-03-14T03:10:00Z", kind, "alice"), action
        assert await desk.get(f"/api/tickets/{tickets[action]}") == ticket
    comment = (await desk.get(f"/api/tickets/{tickets['comment']}"))["history"][-1]
    assert comment["detail"] == "failover to pg-replica-01 started"


async def test_actions_need_a_valid_token(desk: Desk) -> None:
    ticket_id = await desk.alert("nagios:edge-fw-01", "edge-fw-01", "Host edge-fw-01 is DOWN")
    for headers in ({}, auth("tok-alice-8f3e2a91c5"), {"Authorization": ALICE}, {"Authorization": f"Basic {ALICE}"}):
        response = await desk.client.post(f"/api/tickets/{ticket_id}/acknowledge", json={}, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert (await response.json())["error"] == "unauthorized"
    assert (await desk.get(f"/api/tickets/{ticket_id}"))["status"] == "open"


async def test_reads_need_a_token_when_tokens_are_configured(desk: Desk) -> None:
    await desk.alert("nagios:edge-fw-01", "edge-fw-01", "Host edge-fw-01 is DOWN")
    for path in ("/api/tickets", "/api/tickets/1", "/api/stats"):
        await desk.get(path, token=None, status=401)
        await desk.get(path, token="tok-guess", status=401)
    assert len((await desk.get("/api/tickets", token=BOB))["tickets"]) == 1


async def test_read_token_can_read_but_not_act(desk: Desk) -> None:
    ticket_id = await desk.alert("nagios:edge-fw-01", "edge-fw-01", "Host edge-fw-01 is DOWN")
    assert (await desk.get(f"/api/tickets/{ticket_id}", token=READER))["id"] == ticket_id
    assert (await desk.get("/api/stats", token=READER))["total"] == 1
    refused = await desk.post(f"/api/tickets/{ticket_id}/resolve", token=READER, status=403)
    assert refused["error"] == "forbidden"
    assert (await desk.get(f"/api/tickets/{ticket_id}"))["status"] == "open"


async def test_open_api_takes_the_actor_from_the_body(open_desk: Desk) -> None:
    ticket_id = await open_desk.alert("zabbix:trigger/13491", "mail-relay-02", "High CPU utilization")
    refused = await open_desk.post(f"/api/tickets/{ticket_id}/acknowledge", {}, token=None, status=422)
    assert refused["detail"] == [{"loc": ["body", "by"], "msg": "Field required: who does it"}]
    await open_desk.post(f"/api/tickets/{ticket_id}/acknowledge", {"by": "j.martin"}, token=None)
    ticket = await open_desk.post(f"/api/tickets/{ticket_id}/close", token=None)
    assert ticket["acknowledged_by"] == "j.martin"
    assert [h["actor"] for h in ticket["history"]][-3:] == ["j.martin", "operator", "operator"]
    assert [h["kind"] for h in ticket["history"]][-2:] == ["resolved", "closed"]


async def test_acknowledging_a_closed_ticket_is_a_conflict(desk: Desk) -> None:
    ticket_id = await desk.alert("solarwinds:48812", "core-sw-01", "Interface Gi1/0/24 on core-sw-01 is down")
    await desk.post(f"/api/tickets/{ticket_id}/close")
    refused = await desk.post(f"/api/tickets/{ticket_id}/acknowledge", status=409)
    assert refused["error"] == "conflict"
    ticket = await desk.get(f"/api/tickets/{ticket_id}")
    assert (ticket["status"], ticket["acknowledged_by"]) == ("closed", None)


async def test_status_reopens_a_resolved_ticket(desk: Desk) -> None:
    key, host = "nagios:shop-front-01/HTTPS", "shop-front-01"
    ticket_id = await desk.alert(key, host, "HTTPS on shop-front-01 is CRITICAL", service="HTTPS")
    desk.clock.advance(minutes=5)
    await desk.alert(key, host, "HTTPS on shop-front-01 is OK", kind=Kind.RECOVERY, service="HTTPS")
    desk.clock.advance(minutes=5)
    ticket = await desk.post(f"/api/tickets/{ticket_id}/status", {"status": "open"}, token=BOB)
    assert (ticket["status"], ticket["resolved_at"]) == ("open", None)
    assert ("reopened", "bob") in [(h["kind"], h["actor"]) for h in ticket["history"]]
    assert (await desk.keys("status=open")) == [key]


async def test_reopening_while_a_newer_ticket_is_active_is_a_conflict(desk: Desk) -> None:
    key, host = "nagios:edge-fw-01", "edge-fw-01"
    old = await desk.alert(key, host, "Host edge-fw-01 is DOWN")
    await desk.alert(key, host, "Host edge-fw-01 is UP", kind=Kind.RECOVERY)
    new = await desk.alert(key, host, "Host edge-fw-01 is DOWN")
    assert new != old
    await desk.post(f"/api/tickets/{old}/status", {"status": "open"}, status=409)


# --- bad requests -----------------------------------------------------------------------------------------


BAD_QUERIES = {
    "limit=abc": "limit",
    "limit=0": "limit",
    "limit=501": "limit",
    "cursor=next": "cursor",
    "status=open,escalated": "status",
    "severity=disaster": "severity",
    "source=prtg": "source",
    "stauts=open": "stauts",
}


async def test_bad_query_parameter_is_422_naming_it(no_db_desk: Desk) -> None:
    for query, name in BAD_QUERIES.items():
        answer = await no_db_desk.get(f"/api/tickets?{query}", status=422)
        assert answer["error"] == "invalid_request"
        assert [d["loc"] for d in answer["detail"]] == [["query", name]], query


BAD_BODIES: list[tuple[str, bytes, int, list[str]]] = [
    ("comment", b'{"text": "restarted postfix"', 400, ["body"]),
    ("comment", b'["restarted postfix"]', 400, ["body"]),
    ("comment", b'{"by": "alice"}', 422, ["body", "text"]),
    ("comment", b'{"text": ""}', 422, ["body", "text"]),
    ("status", b'{"status": "escalated"}', 422, ["body", "status"]),
    ("assign", b'{"by": "alice"}', 422, ["body"]),
    ("assign", b'{"group": "dba", "asignee": "k.novak"}', 422, ["body", "asignee"]),
]


async def test_bad_body_is_refused_naming_the_field_and_changes_nothing(desk: Desk) -> None:
    ticket_id = await desk.alert("zabbix:trigger/13491", "mail-relay-02", "High CPU utilization")
    headers = {**auth(ALICE), "Content-Type": "application/json"}
    for action, raw, status, loc in BAD_BODIES:
        response = await desk.client.post(f"/api/tickets/{ticket_id}/{action}", data=raw, headers=headers)
        assert response.status == status, raw
        assert [d["loc"] for d in (await response.json())["detail"]] == [loc], raw
    assert len((await desk.get(f"/api/tickets/{ticket_id}"))["history"]) == 1


# --- statistics -------------------------------------------------------------------------------------------


async def test_stats_count_and_average_the_tickets(desk: Desk) -> None:
    empty = await desk.get("/api/stats")
    assert (empty["total"], empty["mtta_seconds"], empty["mttr_seconds"], empty["sla_breach_ratio"]) == (
        0,
        None,
        None,
        None,
    )
    app = await desk.alert("nagios:app-07/Tomcat", "app-07", "Tomcat on app-07 is CRITICAL")  # 03:00:00
    desk.clock.advance(minutes=1)
    queue = await desk.alert("zabbix:trigger/5521", "mq-01", "RabbitMQ queue depth > 10000", severity=Severity.MAJOR)
    desk.clock.advance(minutes=1)
    await desk.alert("solarwinds:9931", "ups-02", "UPS ups-02 on battery", severity=Severity.WARNING)  # 03:02:00
    await desk.alert("nagios:build-01/Backup", "build-01", "Backup job finished late", severity=Severity.INFO)
    desk.clock.advance(minutes=2, seconds=0.25)  # 03:04:00.25
    await desk.post(f"/api/tickets/{app}/acknowledge")  # MTTA sample 240.25 s
    desk.clock.advance(minutes=6, seconds=59.75)  # 03:11:00
    await desk.post(f"/api/tickets/{queue}/acknowledge", token=BOB)  # MTTA sample 600 s
    desk.clock.advance(minutes=19)  # 03:30:00
    await desk.post(f"/api/tickets/{app}/resolve")  # MTTR sample 1800 s
    desk.clock.advance(minutes=92)  # 05:02:00
    await desk.alert("solarwinds:9931", "ups-02", "UPS ups-02 on mains power", kind=Kind.RECOVERY)  # MTTR 7200 s
    async with desk.engines.write.begin() as conn:  # the escalation scanner's job: flag the queue ticket
        await conn.execute(update(tables.tickets).where(tables.tickets.c.id == queue).values(response_breached=True))

    stats = await desk.get("/api/stats")
    assert stats == {
        "total": 4,
        "by_status": {"open": 1, "in_progress": 1, "waiting": 0, "resolved": 2, "closed": 0},
        "by_severity": {"critical": 1, "major": 1, "minor": 0, "warning": 1, "info": 1},
        "acknowledged": 2,
        "mtta_seconds": 420.125,
        "resolved": 2,
        "mttr_seconds": 4500.0,
        "with_sla": 3,
        "sla_breached": 1,
        "sla_breach_ratio": pytest.approx(1 / 3),
    }


# --- the document -----------------------------------------------------------------------------------------


async def test_openapi_describes_exactly_the_routes(no_db_desk: Desk) -> None:
    document = await no_db_desk.get("/api/openapi.json", token=None)
    assert document["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    app = no_db_desk.client.app
    assert app is not None
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert documented == routed
    schemas = document["components"]["schemas"]
    refs = _refs(document)
    assert refs and all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs)
    ticket_fields = set(schemas["TicketView"]["properties"])
    assert {
        "id",
        "number",
        "sla",
        "source_refs",
        "history",
        "previous_ticket_id",
        "runbook_url",
        "external_refs",
    } <= ticket_fields


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []
