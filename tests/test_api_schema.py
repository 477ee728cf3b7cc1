"""The ticket API fuzzed from its own OpenAPI document (schemathesis), against `alertdesk run`'s app on a real port.

Operators' scripts are written from `/api/openapi.json`: every answer, to valid and invalid requests alike, must
be one the document describes (status, Content-Type, body schema, headers), and none a 5xx. Both ways the API
runs: open (no tokens) and guarded (an operator and a read-only token, requests with either, none or a wrong one).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PG_URL
from tests.fuzz import FUZZ
from tests.live import LiveAlertdesk

OPERATOR = "tok-op-4f1c9a7e2b"
READER = "tok-read-8d2e6b0c31"
TICKETS = 4  # what `seed` opens
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SETTINGS = settings(
    FUZZ,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)


def seed(desk: LiveAlertdesk) -> None:
    """A few tickets in different states, made the way production makes them: by webhooks."""
    nagios = {"NOTIFICATIONTYPE": "PROBLEM", "HOSTNAME": "web-01", "SERVICEDESC": "DISK /", "SERVICESTATE": "CRITICAL"}
    zabbix = {"EVENT.ID": "48221902", "EVENT.VALUE": "1", "EVENT.NSEVERITY": "4", "TRIGGER.ID": "24107"}
    orion = {"event_type": "trigger", "AlertObjectID": "1842", "NodeName": "CORE-SW-01", "Severity": "Serious"}
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("nagios", nagios),
        ("nagios", {**nagios, "HOSTNAME": "web-02", "SERVICESTATE": "WARNING"}),
        ("zabbix", {**zabbix, "HOST.HOST": "db-fr-par-02"}),
        ("zabbix", {**zabbix, "HOST.HOST": "db-fr-par-02", "EVENT.UPDATE.STATUS": "1",
                    "EVENT.UPDATE.ACTION": "acknowledged", "USER.FULLNAME": "Jeanne Dupont (jdupont)"}),
        ("solarwinds", orion),
        ("solarwinds", {**orion, "event_type": "reset"}),
    ]  # fmt: skip
    for source, body in bodies:
        status, answer = desk.post_json(f"/webhooks/{source}", body)
        assert status == 202, answer
    _, page = desk.get_json("/api/tickets", {"Authorization": f"Bearer {READER}"})
    assert len(page["tickets"]) == TICKETS


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Both stores: PostgreSQL refuses what SQLite takes (a NUL in text), so the API is fuzzed on each."""
    if request.param == "sqlite":
        yield {}
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE SCHEMA "{schema}"'))
    try:
        yield {"database_url": PG_URL, "database_schema": schema}
    finally:
        asyncio.run(execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="module")
def open_desk(tmp_path_factory: pytest.TempPathFactory, store_database: dict[str, str]) -> Iterator[LiveAlertdesk]:
    with LiveAlertdesk(tmp_path_factory.mktemp("api-open"), **store_database) as desk:
        seed(desk)
        yield desk


@pytest.fixture(scope="module")
def open_api(open_desk: LiveAlertdesk) -> Any:
    return schemathesis.openapi.from_url(f"{open_desk.url}/api/openapi.json")


@pytest.fixture(scope="module")
def guarded_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tokens = {"api_token": OPERATOR, "api_read_token": READER}
    with LiveAlertdesk(tmp_path_factory.mktemp("api-guarded"), **tokens) as desk:
        seed(desk)
        yield schemathesis.openapi.from_url(f"{desk.url}/api/openapi.json")


def fuzz(schema: Any, mode: GenerationMode, tokens: list[str | None]) -> None:
    """Every operation of the document, requests generated from it (valid ones, or invalid ones), each checked.

    Hypothesis drives each operation here rather than through schemathesis' pytest plugin, whose parametrize does
    not run under pytest 9 (it writes `Function._nodeid`).
    """
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"GET /api/tickets", "POST /api/tickets/{id}/acknowledge", "GET /api/stats"} <= labels, labels

    fuzzed = []
    for operation in operations:
        cases = operation.as_strategy(generation_mode=mode)
        if "{id}" in operation.path:  # half on the seeded tickets, so actions act and answers carry a ticket
            seeded = st.integers(1, TICKETS).flatmap(
                lambda ticket_id, operation=operation: operation.as_strategy(mode, path_parameters={"id": ticket_id})
            )
            cases = cases | seeded

        @SETTINGS
        @given(case=cases, token=st.sampled_from(tokens))
        def answers_as_documented(case: schemathesis.Case, token: str | None) -> None:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            answers_as_documented()
        except Unsatisfiable:  # nothing to make invalid: no parameter and no body (GET /api/stats)
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed.append(operation.label)
    assert len(fuzzed) >= len(operations) - 2, fuzzed


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_open_api_answers_as_its_document_says(open_api: Any, mode: GenerationMode) -> None:
    fuzz(open_api, mode, [None])


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_guarded_api_answers_as_its_document_says(guarded_api: Any, mode: GenerationMode) -> None:
    fuzz(guarded_api, mode, [OPERATOR, READER, "tok-wrong", None])


@pytest.mark.parametrize(
    "query", ["cursor=%C2%B9", "limit=%C2%B2", "limit=%D9%A3"], ids=["cursor¹", "limit²", "limit٣"]
)
def test_digits_that_are_not_ascii_are_refused_as_a_bad_parameter(open_desk: LiveAlertdesk, query: str) -> None:
    """Found by this fuzzing: `"¹".isdigit()` is True and `int("¹")` raises, so `?cursor=¹` was a 500."""
    status, answer = open_desk.get_json(f"/api/tickets?{query}")

    assert status == 422
    assert answer["error"] == "invalid_request"
    assert answer["detail"][0]["loc"] == ["query", query.split("=")[0]]


def test_body_nested_too_deep_for_the_parser_is_a_400(open_desk: LiveAlertdesk) -> None:
    """Found while fuzzing: `json.loads` raised RecursionError on arrays nested a hundred thousand deep, a 500."""
    deep = b'{"by": "jeanne", "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, raw, _ = open_desk.request("POST", "/api/tickets/1/comment", deep, {"Content-Type": "application/json"})

    assert status == 400
    assert json.loads(raw)["error"] == "malformed_body"


def test_body_over_the_size_limit_is_a_documented_413(open_desk: LiveAlertdesk) -> None:
    """A response the fuzzing cannot reach (schemathesis sends small bodies): aiohttp refuses over 1 MiB."""
    body = json.dumps({"by": "jeanne", "text": "x" * 2_000_000}).encode()
    status, raw, _ = open_desk.request("POST", "/api/tickets/1/comment", body, {"Content-Type": "application/json"})
    _, document = open_desk.get_json("/api/openapi.json")

    assert status == 413
    assert json.loads(raw)["error"] == "request_entity_too_large"
    assert "413" in document["paths"]["/api/tickets/{id}/comment"]["post"]["responses"]


def test_nul_in_a_field_or_filter_is_a_422_naming_it(open_desk: LiveAlertdesk) -> None:
    """Found by this fuzzing on PostgreSQL, whose text cannot hold NUL: the database error was a 500."""
    comment_status, comment = open_desk.post_json("/api/tickets/1/comment", {"by": "jeanne", "text": "disk\x00full"})
    filter_status, page = open_desk.get_json("/api/tickets?host=web%0001")

    assert (comment_status, filter_status) == (422, 422)
    assert comment["detail"] == [{"loc": ["body", "text"], "msg": "must not contain NUL (\\u0000)"}]
    assert page["detail"] == [{"loc": ["query", "host"], "msg": "must not contain NUL (\\u0000)"}]
