"""Zabbix webhook payloads → `Alert`.

The body is our media type's parameters passed through unchanged (iLert-style): keys named after the macros
(`EVENT.ID`, `TRIGGER.ID`, …), every value a string, unresolved macros left as their literal `{MACRO}` text.
What a notification means comes from `EVENT.SOURCE`, `EVENT.VALUE`, `EVENT.UPDATE.STATUS` and
`EVENT.UPDATE.ACTION`, never from the subject, which the operator can reword (source-formats.md §2.2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from normalizers.fields import Fields, is_placeholder, without_nul
from normalizers.schema import Alert, Envelope, Ignored, Kind, Severity, Source, UpdateAction

_EVENT_SOURCES = {"0": "trigger", "1": "discovery", "2": "autoregistration", "3": "internal"}
_BINARY = {"0": False, "1": True}

# By number, never by `EVENT.SEVERITY`: the names are configurable (source-formats.md §4).
_SEVERITIES = {
    "0": Severity.INFO,  # Not classified
    "1": Severity.INFO,  # Information
    "2": Severity.WARNING,  # Warning
    "3": Severity.MINOR,  # Average
    "4": Severity.MAJOR,  # High
    "5": Severity.CRITICAL,  # Disaster
}

_DIGITS = re.compile(r"[0-9]+")

# What Zabbix writes for a macro it supports but could not resolve, e.g. `{HOST.IP}` of a host without interfaces.
_UNKNOWN = "*UNKNOWN*"

# The phrases of `{EVENT.UPDATE.ACTION}` as `zbx_problem_get_actions` writes them, in its order.
_ACTION_PHRASES = (
    (UpdateAction.ACKNOWLEDGED, re.compile(r"acknowledged")),
    (UpdateAction.UNACKNOWLEDGED, re.compile(r"unacknowledged")),
    (UpdateAction.COMMENTED, re.compile(r"commented")),
    # DOTALL: without it a line break late in a long phrase makes `.+ to .+` backtrack quadratically (a 1 MiB
    # body held the event loop for minutes).
    (UpdateAction.SEVERITY_CHANGED, re.compile(r"changed severity from .+ to .+", re.DOTALL)),
    (UpdateAction.CLOSED, re.compile(r"closed")),
    (UpdateAction.SUPPRESSED, re.compile(r"suppressed (?:indefinitely|until \S+ \S+)")),
    (UpdateAction.UNSUPPRESSED, re.compile(r"unsuppressed")),
    (UpdateAction.RANKED, re.compile(r"ranked as (?:symptom|cause)")),
)

# Phrases are joined by ", " and the last two by " and ". Severity names inside "changed severity from X to Y"
# are configurable and may hold either separator, so split only where a separator is followed by the first
# words of a phrase that can come after another one.
_ACTION_SEPARATOR = re.compile(
    r"(?:, | and )(?=(?:unacknowledged|commented|changed severity from|closed|suppressed|unsuppressed|ranked as)\b)"
)


def normalize(body: Mapping[str, Any], envelope: Envelope) -> Alert | Ignored:
    """Map one Zabbix media-type body; only trigger events (`EVENT.SOURCE` 0) become alerts.

    Media types written by hand, and other vendors' (iLert's), send only what they need: no `EVENT.SOURCE` reads
    as a trigger event, no `EVENT.UPDATE.STATUS` as "not an update", and `EVENT.NSEVERITY` is required only
    where it decides something (a problem, a "changed severity" update).
    """
    f = Fields(body)
    event_source = f.choice("EVENT.SOURCE", _EVENT_SOURCES)
    if event_source is not None and event_source != "trigger":
        return Ignored(reason=f"zabbix {event_source} event is not a trigger event")

    event_id = _digits(f, "EVENT.ID")
    trigger_id = _digits(f, "TRIGGER.ID")
    problem = f.choice("EVENT.VALUE", _BINARY, required=True)
    update = bool(f.choice("EVENT.UPDATE.STATUS", _BINARY))
    host, host_name = _host(f, body)
    actions = _actions(f) if update else ()
    severity_decides = (problem is not False and not update) or UpdateAction.SEVERITY_CHANGED in actions
    severity = f.choice("EVENT.NSEVERITY", _SEVERITIES, required=severity_decides)
    actor = _optional(f, "USER.FULLNAME") if update else None
    comment = _optional(f, "EVENT.UPDATE.MESSAGE") if update else None
    title = _optional(f, "EVENT.NAME") or _optional(f, "TRIGGER.NAME") or _optional(f, "ALERT.SUBJECT")
    description = _description(f)
    tags = _tags(_optional(f, "EVENT.TAGSJSON"))
    source_refs = _source_refs(f, event_id, trigger_id)
    address = _optional(f, "HOST.IP")
    f.check()
    # After check() every required value is set; the asserts tell mypy so.
    assert event_id is not None and trigger_id is not None and host is not None
    assert problem is not None

    return Alert(
        id=envelope.alert_id,
        source=Source.ZABBIX,
        instance=envelope.instance,
        dedup_key=envelope.key(f"trigger/{trigger_id}"),
        kind=_kind(problem=problem, update=update),
        actions=actions,
        severity=severity,
        episode_id=event_id,
        host=host,
        host_display=host_name if host_name != host else None,
        address=address,
        title=title or f"Zabbix trigger {trigger_id} on {host_name or host}",
        description=description,
        actor=actor,
        comment=comment,
        source_refs=source_refs,
        tags=tags,
        occurred_at=None,  # Zabbix sends local time without a zone: kept as text in source_refs
        received_at=envelope.received_at,
        idempotency_key=envelope.idempotency_key,
    )


def _kind(*, problem: bool, update: bool) -> Kind:
    """An update wins over the event value: one on a resolved problem is still an update (the store sees it late)."""
    if update:
        return Kind.UPDATE
    return Kind.PROBLEM if problem else Kind.RECOVERY


def _digits(f: Fields, name: str) -> str | None:
    """A required Zabbix id: database ids are unsigned integers."""
    value = f.text(name, required=True)
    if value is not None and not _DIGITS.fullmatch(value):
        f.error(name, f"must be digits, got {value!r}")
        return None
    return value


def _host(f: Fields, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(`HOST.HOST`, `HOST.NAME`): the technical name is the host, the visible one its fallback."""
    technical = f.text("HOST.HOST")
    visible = f.text("HOST.NAME")
    if technical is None and visible is None:
        raw = body.get("HOST.HOST")
        if isinstance(raw, str) and is_placeholder(raw):
            f.error("HOST.HOST", f"unresolved macro {raw.strip()}")
        elif raw is None or isinstance(raw, str):  # a non-string was already reported by `text`
            f.error("HOST.HOST", "field required (HOST.HOST or HOST.NAME)")
    return technical or visible, visible


def _optional(f: Fields, name: str) -> str | None:
    """An optional field: absent, empty, a placeholder or `*UNKNOWN*` all read as None."""
    value = f.text(name)
    return None if value == _UNKNOWN else value


def _actions(f: Fields) -> tuple[UpdateAction, ...]:
    """Parse `EVENT.UPDATE.ACTION`; none (placeholder or empty) means an update carrying only a message."""
    text = f.text("EVENT.UPDATE.ACTION")
    if text is None:
        return ()
    actions: list[UpdateAction] = []
    for phrase in _ACTION_SEPARATOR.split(text):
        action = next((a for a, pattern in _ACTION_PHRASES if pattern.fullmatch(phrase)), None)
        if action is None:
            f.error("EVENT.UPDATE.ACTION", f"unrecognized update action {phrase[:100]!r}")  # never echo a MiB
            return ()
        actions.append(action)
    return tuple(actions)


def _description(f: Fields) -> str:
    """The message, then operational data and the trigger description unless the message already holds them."""
    parts: list[str] = []
    for name in ("ALERT.MESSAGE", "EVENT.OPDATA", "TRIGGER.DESCRIPTION"):
        value = _optional(f, name)
        # The default message template already quotes the operational data: don't repeat it.
        if value is not None and not any(value in part for part in parts):
            parts.append(value)
    return "\n\n".join(parts)


def _tags(tags_json: str | None) -> dict[str, str]:
    """`EVENT.TAGSJSON` (`[{"tag": …, "value": …}]`) as a mapping; optional, so a malformed one reads as none."""
    if tags_json is None:
        return {}
    try:
        entries = json.loads(tags_json)
    except (ValueError, RecursionError):  # RecursionError: arrays nested a few thousand deep
        return {}
    if not isinstance(entries, list):
        return {}
    values: dict[str, list[str]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            return {}
        tag, value = entry.get("tag"), entry.get("value", "")
        if not isinstance(tag, str) or not isinstance(value, str):
            return {}
        values.setdefault(without_nul(tag), []).append(without_nul(value))
    # A tag may repeat with several values (`service:mysql`, `service:backup`).
    return {tag: ",".join(vs) for tag, vs in values.items()}


def _source_refs(f: Fields, event_id: str | None, trigger_id: str | None) -> dict[str, str]:
    """Zabbix's own ids and the link back to the event page."""
    refs: dict[str, str] = {}
    if event_id is not None:
        refs["event_id"] = event_id
    if trigger_id is not None:
        refs["trigger_id"] = trigger_id
    recovery_id = _optional(f, "EVENT.RECOVERY.ID")
    if recovery_id is not None:
        refs["recovery_event_id"] = recovery_id
    severity_name = _optional(f, "EVENT.SEVERITY")
    if severity_name is not None:
        refs["severity_name"] = severity_name
    event_time = " ".join(p for p in (_optional(f, "EVENT.DATE"), _optional(f, "EVENT.TIME")) if p is not None)
    if event_time:
        refs["event_time"] = event_time
    base_url = _optional(f, "ZABBIX.URL")
    # `{$ZABBIX.URL}` is a user macro: left undefined it arrives literally, and is no link.
    if base_url is not None and base_url.startswith(("http://", "https://")) and event_id and trigger_id:
        refs["url"] = f"{base_url.rstrip('/')}/tr_events.php?triggerid={trigger_id}&eventid={event_id}"
    return refs
