"""Nagios notifications → Alert, driven by the sample payloads in `tests/payloads/nagios/`.

Each `*.json` case holds a `body` (as ingest decoded it) and either `expect` (fields of the resulting Alert, as
JSON) or `errors` (the `loc` of each field at fault and a fragment of its message); `instance` is optional.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from normalizers.nagios import normalize
from normalizers.schema import Alert, Envelope, InvalidAlert, Source

PAYLOADS = Path(__file__).parent / "payloads" / "nagios"
RECEIVED_AT = datetime(2026, 3, 14, 9, 26, 41, tzinfo=UTC)
ALERT_ID = "5b0f6c1e-8a57-4c1d-9a43-2f0e4d1c7b21"


def _envelope(instance: str | None = None, idempotency_key: str | None = None) -> Envelope:
    return Envelope(
        source=Source.NAGIOS,
        instance=instance,
        received_at=RECEIVED_AT,
        alert_id=ALERT_ID,
        idempotency_key=idempotency_key,
    )


def _load(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return case


def _cases(outcome: str) -> list[Any]:
    paths = sorted(PAYLOADS.glob("*.json"))
    return [pytest.param(_load(p.name), id=p.stem) for p in paths if outcome in _load(p.name)]


def _alert(body: dict[str, Any], instance: str | None = None) -> Alert:
    alert = normalize(body, _envelope(instance))
    assert isinstance(alert, Alert)
    return alert


@pytest.mark.parametrize("case", _cases("expect"))
def test_accepted_payload_maps_to_alert(case: dict[str, Any]) -> None:
    alert = _alert(case["body"], case.get("instance"))

    dumped = alert.model_dump(mode="json")
    assert {field: dumped[field] for field in case["expect"]} == case["expect"]


@pytest.mark.parametrize("case", _cases("errors"))
def test_rejected_payload_names_each_field_at_fault(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidAlert) as raised:
        normalize(case["body"], _envelope())

    detail = raised.value.detail
    assert sorted(d["loc"] for d in detail) == sorted(e["loc"] for e in case["errors"])
    for expected in case["errors"]:
        msg = next(d["msg"] for d in detail if d["loc"] == expected["loc"])
        assert expected["msg"] in msg


def test_alert_carries_the_delivery_envelope() -> None:
    body = _load("form-service-problem-disk.json")["body"]

    alert = normalize(body, _envelope(instance="paris", idempotency_key="nagios-paris-01:48213:PROBLEM:1"))

    assert isinstance(alert, Alert)
    assert alert.id == ALERT_ID
    assert alert.source is Source.NAGIOS
    assert alert.instance == "paris"
    assert alert.dedup_key == "nagios@paris:web-01/DISK /"
    assert alert.idempotency_key == "nagios-paris-01:48213:PROBLEM:1"
    assert alert.received_at == RECEIVED_AT


def test_raw_form_body_gives_the_same_alert_as_its_decoded_case() -> None:
    raw = (PAYLOADS / "form-service-problem-disk.form").read_text(encoding="utf-8")
    decoded = dict(parse_qsl(raw, keep_blank_values=True, strict_parsing=True))

    assert _alert(decoded) == _alert(_load("form-service-problem-disk.json")["body"])


def test_same_check_from_every_shape_gets_the_same_key_and_meaning() -> None:
    form = _load("form-service-problem-disk.json")["body"]
    prefixed = {f"NAGIOS_{k}" if k.isupper() and k != "NAGIOS_SERVER" else k: v for k, v in form.items()}
    snake = {
        "entity_type": "service",
        "notification_type": "PROBLEM",
        "host_name": "web-01",
        "host_state": "UP",
        "service_desc": "DISK /",
        "service_state": "CRITICAL",
        "service_problem_id": "48213",
    }

    alerts = [_alert(body) for body in (form, prefixed, snake)]

    assert {(a.dedup_key, a.kind, a.severity, a.episode_id, a.title) for a in alerts} == {
        ("nagios:web-01/DISK /", "problem", "critical", "48213", "DISK / on web-01 is CRITICAL")
    }


def test_vocabulary_is_matched_case_insensitively_and_kept_canonical() -> None:
    body = {
        "notification_type": "Acknowledgement",
        "host_name": "esx-r2-14",
        "host_state": "unreachable",
        "host_problem_id": "48262",
    }

    alert = _alert(body)

    assert (alert.kind, alert.severity, alert.title) == ("acknowledge", "major", "Host esx-r2-14 is UNREACHABLE")
    assert alert.source_refs["notification_type"] == "ACKNOWLEDGEMENT"
