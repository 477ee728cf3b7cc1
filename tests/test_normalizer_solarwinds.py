"""SolarWinds Orion bodies (our template, Datadog, Opsgenie, iLert) → Alert, from the sample files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from normalizers import solarwinds
from normalizers.schema import Alert, Envelope, InvalidAlert, Kind, Severity, Source

PAYLOADS = Path(__file__).parent / "payloads" / "solarwinds"
RECEIVED_AT = datetime(2026, 3, 14, 9, 26, 41, tzinfo=UTC)
CASES = sorted(PAYLOADS.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    return case


def envelope(instance: str | None = None, idempotency_key: str | None = None) -> Envelope:
    return Envelope(
        source=Source.SOLARWINDS,
        instance=instance,
        received_at=RECEIVED_AT,
        alert_id="0b9d1f6e-3c2a-4e8b-9a71-5f4c2d8e6a10",
        idempotency_key=idempotency_key,
    )


def normalize(body: dict[str, Any], instance: str | None = None) -> Alert:
    result = solarwinds.normalize(body, envelope(instance))
    assert isinstance(result, Alert)
    return result


def error_locs(body: dict[str, Any]) -> list[list[str]]:
    with pytest.raises(InvalidAlert) as raised:
        solarwinds.normalize(body, envelope())
    assert all(d["msg"] for d in raised.value.detail)
    return sorted(d["loc"] for d in raised.value.detail)


@pytest.mark.parametrize("path", [p for p in CASES if "expect" in load(p.stem)], ids=lambda p: p.stem)
def test_sample_maps_to_expected_alert(path: Path) -> None:
    case = load(path.stem)
    alert = normalize(case["body"], case.get("instance"))
    dumped = alert.model_dump(mode="json")
    assert {k: dumped[k] for k in case["expect"]} == case["expect"]


@pytest.mark.parametrize("path", [p for p in CASES if "error_locs" in load(p.stem)], ids=lambda p: p.stem)
def test_sample_is_rejected_naming_the_field(path: Path) -> None:
    case = load(path.stem)
    assert error_locs(case["body"]) == sorted(case["error_locs"])


def test_every_sample_is_a_mapping_or_a_rejection() -> None:
    assert len(CASES) >= 30
    for path in CASES:
        assert ("expect" in load(path.stem)) != ("error_locs" in load(path.stem)), path.name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", Severity.INFO),
        ("Information", Severity.INFO),
        ("Informational", Severity.INFO),
        ("1", Severity.WARNING),
        ("Warning", Severity.WARNING),
        ("2", Severity.CRITICAL),
        ("Critical", Severity.CRITICAL),
        ("CRITICAL", Severity.CRITICAL),
        ("3", Severity.MAJOR),
        ("Serious", Severity.MAJOR),
        ("4", Severity.INFO),
        ("Notice", Severity.INFO),
        (" 2 ", Severity.CRITICAL),
    ],
)
def test_orion_severity_by_name_and_number(raw: str, expected: Severity) -> None:
    body = load("template-trigger-node-down")["body"] | {"Severity": raw}
    assert normalize(body).severity is expected


@pytest.mark.parametrize("raw", ["", "${N=Alerting;M=Severity}"])
def test_trigger_without_usable_severity_defaults_to_warning(raw: str) -> None:
    body = load("opsgenie-create")["body"] | {"Severity": raw}
    assert normalize(body).severity is Severity.WARNING


@pytest.mark.parametrize("raw", ["", "Major", "7"])
def test_reset_is_never_refused_for_its_severity(raw: str) -> None:
    body = load("template-reset-node-down")["body"] | {"Severity": raw, "Acknowledged": "maybe"}
    alert = normalize(body)
    assert (alert.kind, alert.severity) == (Kind.RECOVERY, None)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("True", Kind.ACKNOWLEDGE),
        ("yes", Kind.ACKNOWLEDGE),
        ("1", Kind.ACKNOWLEDGE),
        ("FALSE", Kind.PROBLEM),
        ("No", Kind.PROBLEM),
        ("0", Kind.PROBLEM),
        ("", Kind.PROBLEM),
    ],
)
def test_acknowledged_flag_turns_a_repeated_trigger_into_an_acknowledgement(raw: str, kind: Kind) -> None:
    body = load("template-trigger-node-down")["body"] | {"Acknowledged": raw, "AcknowledgedBy": "CORP\\jdupont"}
    alert = normalize(body)
    assert alert.kind is kind
    assert alert.actor == ("CORP\\jdupont" if kind is Kind.ACKNOWLEDGE else None)


def test_alert_carries_the_delivery_envelope() -> None:
    body = load("template-trigger-node-down")["body"]
    alert = solarwinds.normalize(body, envelope("lyon", idempotency_key="orion-1842-59313-3"))
    assert isinstance(alert, Alert)
    assert alert.id == "0b9d1f6e-3c2a-4e8b-9a71-5f4c2d8e6a10"
    assert alert.source is Source.SOLARWINDS
    assert alert.received_at == RECEIVED_AT
    assert alert.idempotency_key == "orion-1842-59313-3"
    assert (alert.instance, alert.dedup_key) == ("lyon", "solarwinds@lyon:1842")


def test_body_without_discriminator_says_which_keys_are_expected() -> None:
    body = load("opsgenie-create")["body"]
    del body["ActionType"]
    with pytest.raises(InvalidAlert) as raised:
        solarwinds.normalize(body, envelope())
    [detail] = raised.value.detail
    assert detail["loc"] == ["event_type"]
    assert "ActionType" in detail["msg"] and "iLertEventType" in detail["msg"]


def test_non_string_value_is_reported_as_such() -> None:
    body = load("ilert-alert")["body"] | {"Severity": 2}
    with pytest.raises(InvalidAlert) as raised:
        solarwinds.normalize(body, envelope())
    assert raised.value.detail == [{"loc": ["Severity"], "msg": "must be a string, got int"}]
