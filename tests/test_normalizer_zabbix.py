"""Zabbix media-type bodies → Alert.

Each file in `payloads/zabbix/` is one delivery as our media type posts it, with what the receiver must make of
it: `expect` (a subset of the Alert's JSON), `ignored` (the reason), or `errors` (the 422 detail, in order; `msg`
is matched as a substring). The tests below the file cases cover what is easier to read as a variation of one
realistic body.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import normalizers
from normalizers.schema import Alert, Envelope, Ignored, InvalidAlert, Kind, Severity, Source, UpdateAction
from normalizers.zabbix import normalize

PAYLOADS = Path(__file__).parent / "payloads" / "zabbix"
RECEIVED_AT = datetime(2026, 3, 14, 9, 26, 41, tzinfo=UTC)
ALERT_ID = "0b6f5c1e-5f0e-4d5b-9d1e-2c7a4b8e9f10"


def envelope(instance: str | None = None, idempotency_key: str | None = None) -> Envelope:
    return Envelope(
        source=Source.ZABBIX,
        instance=instance,
        received_at=RECEIVED_AT,
        alert_id=ALERT_ID,
        idempotency_key=idempotency_key,
    )


def load(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    return case


def cases(outcome: str) -> list[str]:
    return sorted(p.stem for p in PAYLOADS.glob("*.json") if outcome in load(p.stem))


def body(name: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of a payload file, with some fields replaced (None removes the field)."""
    result: dict[str, Any] = dict(load(name)["body"])
    for field, value in (changes or {}).items():
        if value is None:
            result.pop(field, None)
        else:
            result[field] = value
    return result


def to_alert(payload: dict[str, Any], instance: str | None = None) -> Alert:
    result = normalize(payload, envelope(instance))
    assert isinstance(result, Alert)
    return result


def rejected_locs(payload: dict[str, Any]) -> list[list[str]]:
    with pytest.raises(InvalidAlert) as caught:
        normalize(payload, envelope())
    return [d["loc"] for d in caught.value.detail]


# --- payload files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", cases("expect"))
def test_payload_maps_to_alert(name: str) -> None:
    case = load(name)
    alert = to_alert(case["body"], case.get("instance"))
    dumped = alert.model_dump(mode="json")
    assert {field: dumped[field] for field in case["expect"]} == case["expect"]


@pytest.mark.parametrize("name", cases("ignored"))
def test_payload_of_other_event_source_is_ignored(name: str) -> None:
    case = load(name)
    assert normalize(case["body"], envelope()) == Ignored(reason=case["ignored"])


@pytest.mark.parametrize("name", cases("errors"))
def test_payload_is_rejected_naming_the_fields(name: str) -> None:
    case = load(name)
    with pytest.raises(InvalidAlert) as caught:
        normalize(case["body"], envelope())
    detail = caught.value.detail
    assert [d["loc"] for d in detail] == [e["loc"] for e in case["errors"]]
    for got, wanted in zip(detail, case["errors"], strict=True):
        assert wanted["msg"] in got["msg"]


def test_every_kind_and_severity_row_has_a_payload_file() -> None:
    alerts = [to_alert(load(name)["body"], load(name).get("instance")) for name in cases("expect")]
    assert {a.kind for a in alerts} == {Kind.PROBLEM, Kind.RECOVERY, Kind.UPDATE}
    assert {a.severity for a in alerts} == {*Severity, None}  # None: a minimal recovery or update
    assert {action for a in alerts for action in a.actions} == set(UpdateAction) - {UpdateAction.RANKED}


# --- identity ---------------------------------------------------------------------------------------------


def test_envelope_gives_id_time_and_idempotency_key() -> None:
    result = normalize(body("problem_severity_2_warning"), envelope(idempotency_key="zabbix-48213977-1"))
    assert isinstance(result, Alert)
    assert result.id == ALERT_ID
    assert result.source is Source.ZABBIX
    assert result.received_at == RECEIVED_AT
    assert result.idempotency_key == "zabbix-48213977-1"


def test_named_instance_changes_only_the_key_and_instance() -> None:
    payload = body("problem_severity_4_high_non_ascii_host")
    default, paris = to_alert(payload), to_alert(payload, instance="paris")
    assert default.dedup_key == "zabbix:trigger/19830"
    assert paris.dedup_key == "zabbix@paris:trigger/19830"
    assert paris.instance == "paris"
    assert paris.model_copy(update={"dedup_key": default.dedup_key, "instance": None}) == default


def test_problem_recovery_and_updates_of_one_event_share_key_and_episode() -> None:
    names = ["problem_severity_2_warning", "problem_repeated_escalation_step", "recovery", "update_on_resolved_problem"]
    alerts = [to_alert(body(name)) for name in names]
    assert {(a.dedup_key, a.episode_id) for a in alerts} == {("zabbix:trigger/23714", "48213977")}
    assert [a.kind for a in alerts] == [Kind.PROBLEM, Kind.PROBLEM, Kind.RECOVERY, Kind.UPDATE]


def test_registry_routes_zabbix_bodies_here() -> None:
    result = normalizers.normalize("zabbix", body("recovery"), received_at=RECEIVED_AT, instance="mtl")
    assert isinstance(result, Alert)
    assert result.dedup_key == "zabbix@mtl:trigger/23714"
    assert result.kind is Kind.RECOVERY


# --- severity ---------------------------------------------------------------------------------------------


def test_severity_follows_the_number_not_the_renameable_name() -> None:
    alert = to_alert(body("problem_severity_2_warning", {"EVENT.NSEVERITY": "1", "EVENT.SEVERITY": "Disaster"}))
    assert alert.severity is Severity.INFO
    assert alert.source_refs["severity_name"] == "Disaster"


# --- update actions ---------------------------------------------------------------------------------------

ACK, UNACK, COMMENTED = UpdateAction.ACKNOWLEDGED, UpdateAction.UNACKNOWLEDGED, UpdateAction.COMMENTED
SEVERITY, CLOSED, RANKED = UpdateAction.SEVERITY_CHANGED, UpdateAction.CLOSED, UpdateAction.RANKED
SUPPRESSED, UNSUPPRESSED = UpdateAction.SUPPRESSED, UpdateAction.UNSUPPRESSED


@pytest.mark.parametrize(
    ("text", "actions"),
    [
        ("acknowledged, commented and changed severity from Not classified to Disaster", [ACK, COMMENTED, SEVERITY]),
        ("changed severity from Warning to Urgent and important and closed", [SEVERITY, CLOSED]),
        ("changed severity from Sev 3, minor to Sev 1, outage", [SEVERITY]),
        ("changed severity from Average to High, closed and suppressed indefinitely", [SEVERITY, CLOSED, SUPPRESSED]),
        ("acknowledged, commented and suppressed until 2026.03.15 06:00:00", [ACK, COMMENTED, SUPPRESSED]),
        ("commented and ranked as symptom", [COMMENTED, RANKED]),
        ("unsuppressed and ranked as cause", [UNSUPPRESSED, RANKED]),
        ("unacknowledged and commented", [UNACK, COMMENTED]),
        ("{EVENT.UPDATE.ACTION}", []),
        ("", []),
    ],
)
def test_update_action_phrases_in_zabbix_order(text: str, actions: list[UpdateAction]) -> None:
    alert = to_alert(body("update_acknowledged", {"EVENT.UPDATE.ACTION": text}))
    assert alert.kind is Kind.UPDATE
    assert list(alert.actions) == actions


@pytest.mark.parametrize(
    "text",
    [
        "escalated",
        "acknowledged; commented",
        "changed severity to High",
        "suppressed for 2h",
        "ranked as duplicate",
        "Acknowledged",
    ],
)
def test_unrecognized_update_action_is_rejected(text: str) -> None:
    assert rejected_locs(body("update_acknowledged", {"EVENT.UPDATE.ACTION": text})) == [["EVENT.UPDATE.ACTION"]]


def test_update_fields_are_not_read_from_a_problem_notification() -> None:
    alert = to_alert(
        body("problem_severity_2_warning", {"EVENT.UPDATE.ACTION": "acknowledged", "USER.FULLNAME": "Jeanne Dupont"})
    )
    assert alert.kind is Kind.PROBLEM
    assert alert.actions == ()
    assert alert.actor is None


def test_resolved_problem_update_is_an_update_not_a_recovery() -> None:
    alert = to_alert(body("update_on_resolved_problem"))
    assert alert.kind is Kind.UPDATE
    assert alert.source_refs["recovery_event_id"] == "48216140"


# --- title, host, description, tags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "title"),
    [
        ({"EVENT.NAME": None}, "High CPU utilization (over 90% for 5m)"),
        ({"EVENT.NAME": "{EVENT.NAME}", "TRIGGER.NAME": ""}, "Problem: High CPU utilization (over 90% for 5m)"),
        ({"EVENT.NAME": None, "TRIGGER.NAME": None, "ALERT.SUBJECT": None}, "Zabbix trigger 23714 on web-fr-par-03"),
    ],
)
def test_title_falls_back_but_is_never_empty(changes: dict[str, Any], title: str) -> None:
    assert to_alert(body("problem_severity_2_warning", changes)).title == title


def test_visible_name_stands_in_for_a_missing_technical_name() -> None:
    alert = to_alert(body("problem_severity_3_average", {"HOST.HOST": "{HOST.HOST}"}))
    assert alert.host == "PostgreSQL primary (Paris)"
    assert alert.host_display is None


def test_description_is_the_message_alone_when_the_rest_is_absent() -> None:
    payload = body("problem_severity_3_average", {"EVENT.OPDATA": "{EVENT.OPDATA}", "TRIGGER.DESCRIPTION": None})
    assert (
        to_alert(payload).description == "db-fr-par-01: /var: Disk space is critically low (used > 90%) since 10:12:09"
    )


def test_description_may_be_empty() -> None:
    payload = body("problem_severity_5_disaster_renamed", {"ALERT.MESSAGE": ""})
    alert = to_alert(payload)
    assert alert.description == ""
    assert alert.title == "PostgreSQL: Service is down"


def test_tags_sent_as_an_object_are_rejected_as_not_a_string() -> None:
    payload = body("problem_severity_2_warning", {"EVENT.TAGSJSON": [{"tag": "class", "value": "os"}]})
    assert rejected_locs(payload) == [["EVENT.TAGSJSON"]]


@pytest.mark.parametrize("tags_json", ['{"class":"os"}', '[{"value":"os"}]', '[{"tag":"class","value":3}]', "[1]"])
def test_tags_of_an_unexpected_shape_read_as_none(tags_json: str) -> None:
    assert to_alert(body("problem_severity_2_warning", {"EVENT.TAGSJSON": tags_json})).tags == {}


def test_link_back_is_omitted_without_a_frontend_url() -> None:
    alert = to_alert(body("problem_severity_2_warning", {"ZABBIX.URL": None}))
    assert "url" not in alert.source_refs
    assert alert.source_refs["event_id"] == "48213977"


def test_tags_nested_too_deep_for_the_parser_read_as_none() -> None:
    """Found by tests/test_fuzz_inputs.py: json.loads raised RecursionError, a 500 for one odd optional field."""
    alert = to_alert(body("problem_severity_2_warning", {"EVENT.TAGSJSON": "[" * 5000 + "]" * 5000}))
    assert alert.tags == {}
    assert alert.kind is Kind.PROBLEM


def test_long_action_text_with_a_line_break_is_refused_at_once() -> None:
    """Found while fuzzing: `changed severity from .+ to .+` backtracked quadratically (minutes for 1 MiB)."""
    text = "changed severity from " + " to " * 64_000 + "\nHigh"
    started = time.perf_counter()
    alert = to_alert(body("update_acknowledged", {"EVENT.UPDATE.ACTION": text}))
    assert time.perf_counter() - started < 1.0
    assert list(alert.actions) == [SEVERITY]
