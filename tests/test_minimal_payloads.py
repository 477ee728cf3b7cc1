"""Minimal payloads are real payloads: what hand-written Zabbix media types and iLert's template post opens and
resolves tickets through `alertdesk run`'s HTTP layer, like our own media type's full bodies do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveAlertdesk

PAYLOADS = Path(__file__).parent / "payloads" / "zabbix"


def body(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    return dict(case["body"])


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAlertdesk]:
    with LiveAlertdesk(tmp_path_factory.mktemp("minimal")) as live:
        yield live


def post(desk: LiveAlertdesk, name: str) -> dict[str, Any]:
    status, answer = desk.post_json("/webhooks/zabbix", body(name))
    assert status == 202, answer
    assert answer["status"] == "accepted"
    return dict(answer)


def ticket(desk: LiveAlertdesk, key: str) -> dict[str, Any]:
    status, page = desk.get_json(f"/api/tickets?dedup_key={key}")
    assert status == 200
    [found] = page["tickets"]
    return dict(found)


def test_hand_written_media_type_opens_acknowledges_and_resolves(desk: LiveAlertdesk) -> None:
    assert post(desk, "minimal_problem")["kind"] == "problem"
    opened = ticket(desk, "zabbix:trigger/24107")
    assert (opened["status"], opened["severity"], opened["priority"]) == ("open", "major", "P2")
    assert opened["title"] == "MySQL: Replication lag is too high (over 300s)"

    post(desk, "minimal_update_acknowledged")
    acknowledged = ticket(desk, "zabbix:trigger/24107")
    assert acknowledged["status"] == "in_progress"
    assert acknowledged["acknowledged_by"] == "Jeanne Dupont (jdupont)"
    assert acknowledged["severity"] == "major"  # an update without a severity leaves it alone

    post(desk, "minimal_recovery")
    resolved = ticket(desk, "zabbix:trigger/24107")
    assert resolved["status"] == "resolved"
    assert resolved["id"] == opened["id"]


def test_ilert_media_type_opens_and_resolves(desk: LiveAlertdesk) -> None:
    post(desk, "ilert_problem")
    opened = ticket(desk, "zabbix:trigger/24511")
    assert (opened["status"], opened["severity"], opened["host"]) == ("open", "minor", "app-fr-par-11")

    post(desk, "ilert_recovery")
    assert ticket(desk, "zabbix:trigger/24511")["status"] == "resolved"


def test_full_body_without_event_source_is_a_trigger_event(desk: LiveAlertdesk) -> None:
    post(desk, "problem_without_event_source")
    assert ticket(desk, "zabbix:trigger/23714")["status"] == "open"


def test_problem_without_severity_is_still_refused_naming_it(desk: LiveAlertdesk) -> None:
    status, answer = desk.post_json("/webhooks/zabbix", body("reject_minimal_problem_without_severity"))

    assert status == 422
    assert answer["detail"] == [{"loc": ["EVENT.NSEVERITY"], "msg": "field required"}]
