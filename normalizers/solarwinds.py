"""SolarWinds Orion alert-action POSTs → Alert.

Orion has no webhook schema: an alert action posts whatever body the operator typed, with `${N=...}` variables
pasted in as raw text. We accept four bodies, told apart by their trigger/reset discriminator:

- our template (`event_type` trigger/reset), as JSON or in form style;
- Datadog's JSON (`alert_id`, `reset: "true"` on reset), which carries no AlertObjectID;
- Opsgenie's form (`ActionType` Create/Close, `alias=<AlertObjectID>-<AlertID>`);
- iLert's form (`iLertEventType` ALERT/RESOLVE, `iLertIncidentKey=<AlertObjectID>-<AlertActiveID>`).

The key is the AlertObjectID, stable per (alert definition, object); the AlertActiveID changes on every
activation and is the episode id. Orion cannot notify on acknowledge, so a repeated trigger carrying
`Acknowledged=True` is read as the acknowledgement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from normalizers.fields import Fields
from normalizers.schema import Alert, Envelope, Ignored, InvalidAlert, Kind, Severity

# Orion.AlertConfigurations.Severity: the variable may render the name or the number, so both are accepted.
_SEVERITY = {
    "0": Severity.INFO,
    "Information": Severity.INFO,
    "Informational": Severity.INFO,
    "1": Severity.WARNING,
    "Warning": Severity.WARNING,
    "2": Severity.CRITICAL,
    "Critical": Severity.CRITICAL,
    "3": Severity.MAJOR,
    "Serious": Severity.MAJOR,
    "4": Severity.INFO,
    "Notice": Severity.INFO,
}
# A trigger without a usable Severity (older templates omit it) is still a problem someone should see.
_DEFAULT_SEVERITY = Severity.WARNING

_BOOLEAN = {"True": True, "False": False, "Yes": True, "No": False, "1": True, "0": False}

_DIGITS = re.compile(r"[0-9]+")

_NO_DISCRIMINATOR = "no trigger/reset discriminator: expected event_type, ActionType, iLertEventType or alert_id"


@dataclass(frozen=True)
class _Names:
    """Where one family of bodies keeps each piece of information (Orion's variable names, or Datadog's)."""

    node: str
    entity: str
    address: str
    object_type: str
    name: str
    message: tuple[str, ...]
    description: str
    url: tuple[str, ...]
    severity: str
    acknowledged: str
    acknowledged_by: str
    refs: tuple[tuple[str, str], ...]  # (source_refs key, field name)


_ORION = _Names(
    node="NodeName",
    entity="EntityCaption",
    address="IP_Address",
    object_type="ObjectType",
    name="AlertName",
    message=("AlertMessage", "iLertEventSummary"),
    description="AlertDescription",
    url=("AlertDetailsUrl", "iLertUrl"),
    severity="Severity",
    acknowledged="Acknowledged",
    acknowledged_by="AcknowledgedBy",
    refs=(
        ("alert_id", "AlertID"),
        ("alert_def_id", "AlertDefID"),
        ("trigger_count", "AlertTriggerCount"),
        ("trigger_time", "AlertTriggerTime"),
    ),
)

_DATADOG = _Names(
    node="host",
    entity="object",
    address="ip",
    object_type="object_type",
    name="alert_name",
    message=("alert_message",),
    description="alert_description",
    url=("alert_details_url",),
    severity="alert_severity",
    acknowledged="acknowledged",
    acknowledged_by="acknowledged_by",
    refs=(),
)


@dataclass(frozen=True)
class _Identity:
    """What the discriminator and identity fields of one shape say; None where a fault was recorded."""

    reset: bool | None
    key_rest: str | None
    episode_id: str | None = None
    refs: dict[str, str] = field(default_factory=dict)


def _object_id(f: Fields, name: str, value: str | None) -> str | None:
    """Orion's AlertObjectID is an integer; anything else means the template or the variable is wrong."""
    if value is None:
        return None
    if not _DIGITS.fullmatch(value):
        f.error(name, f"must be a numeric AlertObjectID, got {value!r}")
        return None
    return value


def _orion_identity(
    reset: bool | None, object_id: str | None, active_id: str | None, alert_id: str | None
) -> _Identity:
    refs = {"alert_object_id": object_id, "alert_active_id": active_id, "alert_id": alert_id}
    return _Identity(reset, object_id, active_id, {k: v for k, v in refs.items() if v is not None})


def _template(f: Fields) -> _Identity:
    reset = f.choice("event_type", {"trigger": False, "reset": True}, required=True)
    object_id = _object_id(f, "AlertObjectID", f.text("AlertObjectID", required=True))
    return _orion_identity(reset, object_id, f.text("AlertActiveID"), None)


def _opsgenie(f: Fields) -> _Identity:
    """The alias is preferred to ObjectID because the reset body carries only the alias: both must give one key."""
    reset = f.choice("ActionType", {"Create": False, "Close": True}, required=True)
    object_id_field = f.text("ObjectID")
    alias = f.text("alias", required=object_id_field is None)
    if alias is not None:
        prefix, _, alert_id = alias.partition("-")
        return _orion_identity(reset, _object_id(f, "alias", prefix), None, alert_id or None)
    return _orion_identity(reset, _object_id(f, "ObjectID", object_id_field), None, None)


def _ilert(f: Fields) -> _Identity:
    reset = f.choice("iLertEventType", {"ALERT": False, "RESOLVE": True}, required=True)
    incident_key = f.text("iLertIncidentKey", required=True)
    if incident_key is None:
        return _Identity(reset, None)
    prefix, _, active_id = incident_key.partition("-")
    return _orion_identity(reset, _object_id(f, "iLertIncidentKey", prefix), active_id or None, None)


def _datadog(f: Fields) -> _Identity:
    """Datadog's body has no AlertObjectID; its `alert_id` is the definition's AlertDefID, so add the object."""
    reset = f.choice("reset", _BOOLEAN) or False
    definition = f.text("alert_id", required=True)
    entity = f.text("object", "host", required=True)
    if definition is None or entity is None:
        return _Identity(reset, None)
    return _Identity(reset, f"{definition}/{entity}", refs={"alert_def_id": definition})


def _shape(body: Mapping[str, Any]) -> tuple[Callable[[Fields], _Identity], _Names]:
    if "event_type" in body:
        return _template, _ORION
    if "ActionType" in body:
        return _opsgenie, _ORION
    if "iLertEventType" in body:
        return _ilert, _ORION
    if "reset" in body or "alert_id" in body:
        return _datadog, _DATADOG
    raise InvalidAlert.field("event_type", _NO_DISCRIMINATOR)


def normalize(body: Mapping[str, Any], envelope: Envelope) -> Alert | Ignored:
    """Map one Orion alert-action body to an `Alert`; raise `InvalidAlert` naming every field at fault."""
    read_identity, names = _shape(body)
    f = Fields(body)
    identity = read_identity(f)

    node = f.text(names.node)
    entity = f.text(names.entity)
    object_type = f.text(names.object_type)
    address = f.text(names.address)
    name = f.text(names.name)
    url = f.text(*names.url)
    texts = (f.text(*names.message), f.text(names.description), url)
    refs = {key: value for key, field_name in names.refs if (value := f.text(field_name)) is not None}

    severity: Severity | None = None
    actor: str | None = None
    if identity.reset:
        kind = Kind.RECOVERY
    else:
        severity = f.choice(names.severity, _SEVERITY) or _DEFAULT_SEVERITY
        acknowledged = f.choice(names.acknowledged, _BOOLEAN)
        kind = Kind.ACKNOWLEDGE if acknowledged else Kind.PROBLEM
        actor = f.text(names.acknowledged_by) if acknowledged else None
    f.check()
    assert identity.key_rest is not None  # a missing identity recorded a fault, raised by check()

    host = node or entity or identity.key_rest
    # EntityCaption names the alerted object: the node itself, or a component of it (interface, volume, app).
    about_node = object_type.casefold() == "node" if object_type else entity in (None, host)
    other_caption = entity if entity is not None and entity != host else None
    title = name or f"SolarWinds alert {identity.key_rest}"
    if host != identity.key_rest and host.casefold() not in title.casefold():
        title = f"{title} on {host}"

    return Alert(
        id=envelope.alert_id,
        source=envelope.source,
        instance=envelope.instance,
        dedup_key=envelope.key(identity.key_rest),
        kind=kind,
        severity=severity,
        episode_id=identity.episode_id,
        host=host,
        host_display=other_caption if about_node else None,
        service=None if about_node else other_caption,
        address=address,
        title=title,
        description="\n\n".join(text for text in texts if text),
        actor=actor,
        source_refs={
            **identity.refs,
            **refs,
            **({"url": url} if url else {}),
            **({"object_type": object_type} if object_type else {}),
        },
        received_at=envelope.received_at,
        idempotency_key=envelope.idempotency_key,
    )
