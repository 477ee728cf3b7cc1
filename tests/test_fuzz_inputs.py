"""Inputs nobody thought of, at the pure layers: any body → an `Alert`, an `Ignored` or a documented refusal.

A normalizer or the body decoder raising anything else is a 500 at the webhook, so every property here asserts
the outcome is one the sender is told about (CONTRACT §1), and that an accepted alert can travel (JSON round
trip) and be stored (field limits). What they found is kept as named cases in each source's own test module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import normalizers
from ingest.body import MalformedBody, MediaType, UnsupportedMediaType, decode_body, media_type
from normalizers.schema import FIELD_LIMITS, Alert, Ignored, InvalidAlert, UnknownSource
from tests.fuzz import FIELDS, FUZZ, SAMPLES, SOURCES, bodies, hostile_values, json_values, raw_bodies

NOW = datetime(2026, 3, 14, 9, 26, 41, tzinfo=UTC)
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "APPLICATION/X-WWW-FORM-URLENCODED ; charset=latin-1",
    "application/vnd.api+json",
    "text/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
    ";",
]


def any_body(source: str) -> st.SearchStrategy[dict[str, Any]]:
    """Mutated samples mostly, plus objects of the source's field names, plus anything at all."""
    return st.one_of(
        bodies(source),
        bodies(source),
        st.dictionaries(st.sampled_from(FIELDS[source]), json_values(), max_size=12),
        st.dictionaries(st.text(max_size=12), json_values(), max_size=6),
    )


def outcome(source: str, call: Any) -> Alert | Ignored | InvalidAlert:
    """Run a normalizer; only the documented outcomes may come out, each well-formed."""
    try:
        result = call()
    except InvalidAlert as exc:
        assert exc.detail, "a 422 must name at least one field"
        for fault in exc.detail:
            assert fault["loc"] and all(isinstance(part, str | int) for part in fault["loc"]), fault
            assert isinstance(fault["msg"], str) and fault["msg"], fault
        json.dumps(exc.detail)  # the 422 body
        return exc
    if isinstance(result, Ignored):
        assert source == "zabbix" and result.reason
        return result
    assert isinstance(result, Alert)
    assert Alert.model_validate_json(result.model_dump_json()) == result  # it crosses processes as JSON
    assert result.dedup_key.split(":", 1)[0].split("@")[0] == source
    assert result.host.strip() and result.title.strip()
    assert not any("\x00" in text for text in _strings(result.model_dump())), "PostgreSQL text cannot hold NUL"
    return result


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_each_normalizer_maps_any_body_or_names_the_fault(source: str, data: st.DataObject) -> None:
    """Through the entry point, which adds the instance, the idempotency key and the store's field limits."""
    body = data.draw(any_body(source), label="body")
    # mostly a valid instance or none, so that most bodies reach the source's module
    valid = st.none() | st.sampled_from(["paris", "mtl-2", "a" * 63])
    instance = data.draw(st.one_of(valid, valid, st.text(max_size=70)), label="instance")
    printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)  # what the edge lets through
    key = data.draw(st.none() | st.text(printable, min_size=1, max_size=255), label="idempotency_key")

    result = outcome(
        source,
        lambda: normalizers.normalize(source, body, received_at=NOW, instance=instance, idempotency_key=key),
    )

    if isinstance(result, Alert):
        for name, limit in FIELD_LIMITS.items():
            value = getattr(result, name)
            assert value is None or len(value) <= limit, name


@FUZZ
@given(source=st.text(max_size=12), body=st.dictionaries(st.text(max_size=8), json_values(), max_size=4))
def test_unknown_source_is_refused_as_such(source: str, body: dict[str, Any]) -> None:
    assume(source not in SOURCES)
    with pytest.raises(UnknownSource) as refused:
        normalizers.normalize(source, body, received_at=NOW)
    assert refused.value.detail == [{"loc": ["source"], "msg": f"unknown source {source!r}"}]


@FUZZ
@given(content_type=st.sampled_from(CONTENT_TYPES) | st.text(max_size=60))
def test_any_content_type_has_a_decoder_or_is_415(content_type: str) -> None:
    try:
        kind = media_type(content_type)
    except UnsupportedMediaType as exc:
        assert "is not supported" in exc.detail
    else:
        assert content_type.split(";")[0].strip().lower().endswith(("json", "x-www-form-urlencoded"))
        assert kind in MediaType


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_any_bytes_decode_to_fields_or_a_400(source: str, data: st.DataObject) -> None:
    raw = data.draw(raw_bodies(source), label="raw")
    kind = data.draw(st.sampled_from(MediaType), label="kind")
    try:
        fields = decode_body(kind, raw)
    except MalformedBody as exc:
        assert exc.detail
        return
    assert isinstance(fields, dict) and all(isinstance(name, str) for name in fields)
    if kind is MediaType.FORM:
        assert all(isinstance(value, str) for value in fields.values())
    outcome(source, lambda: normalizers.normalize(source, fields, received_at=NOW))


@pytest.mark.parametrize("source", SOURCES)
def test_every_field_of_every_sample_survives_every_hostile_value(source: str) -> None:
    """What random draws rarely reach: each field of the samples set to each hostile value, in turn."""
    accepted = [body for body in SAMPLES[source] if isinstance(_result(source, body), Alert)]
    failures = []
    for name in FIELDS[source]:
        # two accepted samples that carry the field (it is read there), and one more where it is added
        samples = [*[s for s in accepted if name in s][:2], accepted[0]]
        for sample in samples:
            for value in hostile_values():
                body = {**sample, name: value}
                try:
                    outcome(source, lambda body=body: normalizers.normalize(source, body, received_at=NOW))
                except Exception as exc:
                    failures.append(f"{name}={str(value)[:40]!r}: {type(exc).__name__}: {str(exc)[:80]}")
    assert not failures, f"{len(failures)} failures, e.g. {sorted(set(failures))[:5]}"


def _strings(value: Any) -> Iterator[str]:
    """Every string in a dumped model, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _result(source: str, body: dict[str, Any]) -> Alert | Ignored | InvalidAlert:
    try:
        return normalizers.normalize(source, body, received_at=NOW)
    except InvalidAlert as exc:
        return exc
