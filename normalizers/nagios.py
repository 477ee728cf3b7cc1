"""Nagios notifications → `Alert`.

Nagios has no webhook: a notification command posts its macros. Three shapes reach us (source-formats.md §1):
the form `pagerduty_nagios.pl` posts (macro names without `$`, or with the `NAGIOS_` prefix of environment
macros), the same keys as JSON, and the snake_case JSON of Opsgenie's `send2opsgenie` and Keep's
`webhook-keep.py`. Every field is read under all of its names, and an error names the key the sender used.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from normalizers.fields import Fields
from normalizers.schema import Alert, Envelope, Ignored, Kind, Severity

_KINDS: Mapping[str, Kind] = {
    "PROBLEM": Kind.PROBLEM,
    "RECOVERY": Kind.RECOVERY,
    "ACKNOWLEDGEMENT": Kind.ACKNOWLEDGE,
    "FLAPPINGSTART": Kind.FLAPPING_START,
    "FLAPPINGSTOP": Kind.FLAPPING_STOP,
    "FLAPPINGDISABLED": Kind.COMMENT,
    "DOWNTIMESTART": Kind.DOWNTIME_START,
    "DOWNTIMEEND": Kind.DOWNTIME_END,
    "DOWNTIMECANCELLED": Kind.DOWNTIME_END,
    "CUSTOM": Kind.COMMENT,
}

_OK_STATES = frozenset({"OK", "UP"})

# The snake_case names the Opsgenie and Keep scripts give each macro.
_SNAKE: Mapping[str, tuple[str, ...]] = {
    "NOTIFICATIONTYPE": ("notification_type",),
    "NOTIFICATIONNUMBER": ("notification_number",),
    "NOTIFICATIONAUTHOR": ("notification_author",),
    "NOTIFICATIONCOMMENT": ("notification_comment",),
    "HOSTNAME": ("host_name",),
    "HOSTDISPLAYNAME": ("host_display_name",),
    "HOSTALIAS": ("host_alias",),
    "HOSTADDRESS": ("host_address",),
    "HOSTSTATE": ("host_state",),
    "HOSTSTATETYPE": ("host_state_type",),
    "HOSTOUTPUT": ("host_output",),
    "LONGHOSTOUTPUT": ("long_host_output",),
    "HOSTPROBLEMID": ("host_problem_id",),
    "LASTHOSTPROBLEMID": ("last_host_problem_id",),
    "SERVICEDESC": ("service_desc", "service_description"),
    "SERVICESTATE": ("service_state",),
    "SERVICESTATETYPE": ("service_state_type",),
    "SERVICEOUTPUT": ("service_output",),
    "LONGSERVICEOUTPUT": ("long_service_output",),
    "SERVICEPROBLEMID": ("service_problem_id",),
    "LASTSERVICEPROBLEMID": ("last_service_problem_id",),
    "CONTACTEMAIL": ("contact_email",),
    "CONTACTNAME": ("contact_name",),
    "CONTACTPAGER": ("contact_pager",),
    "LONGDATETIME": ("long_date_time",),
    "HOSTNOTESURL": ("host_notes_url",),
    "HOSTACTIONURL": ("host_action_url",),
    "SERVICENOTESURL": ("service_notes_url",),
    "SERVICEACTIONURL": ("service_action_url",),
    "NAGIOS_SERVER": ("nagios_server",),
    "pd_nagios_object": ("entity_type",),
}

_PROBLEM_ID = re.compile(r"[0-9]{1,20}")
_EPOCH = re.compile(r"[0-9]{1,11}")  # up to year 5138: always a valid datetime
_ESCAPED = re.compile(r"\\([\\n])")


@dataclass(frozen=True)
class _Object:
    """What differs between a host and a service notification: the macros to read and the state words."""

    states: Mapping[str, Severity | None]
    state: str
    state_type: str
    output: str
    long_output: str
    problem_id: str
    last_problem_id: str
    ack_author: str
    ack_comment: str
    prefix: str  # of its macros: HOST or SERVICE


_SERVICE = _Object(
    states={"OK": None, "WARNING": Severity.WARNING, "CRITICAL": Severity.CRITICAL, "UNKNOWN": Severity.MINOR},
    state="SERVICESTATE",
    state_type="SERVICESTATETYPE",
    output="SERVICEOUTPUT",
    long_output="LONGSERVICEOUTPUT",
    problem_id="SERVICEPROBLEMID",
    last_problem_id="LASTSERVICEPROBLEMID",
    ack_author="SERVICEACKAUTHOR",
    ack_comment="SERVICEACKCOMMENT",
    prefix="SERVICE",
)
_HOST = _Object(
    states={"UP": None, "DOWN": Severity.CRITICAL, "UNREACHABLE": Severity.MAJOR},
    state="HOSTSTATE",
    state_type="HOSTSTATETYPE",
    output="HOSTOUTPUT",
    long_output="LONGHOSTOUTPUT",
    problem_id="HOSTPROBLEMID",
    last_problem_id="LASTHOSTPROBLEMID",
    ack_author="HOSTACKAUTHOR",
    ack_comment="HOSTACKCOMMENT",
    prefix="HOST",
)
_OBJECTS: Mapping[str, _Object] = {"host": _HOST, "service": _SERVICE}


class _Keys:
    """Every key one macro may arrive under, ordered so that an error names the key the sender used.

    Keys present in the body come first; among absent ones, the body's own naming style (macro or snake_case)
    comes first, so a field missing from an Opsgenie body is reported as `host_name`, not `HOSTNAME`.
    """

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = body
        self._snake_first = bool(body) and not any(key.isupper() for key in body)

    def __call__(self, *macros: str) -> tuple[str, ...]:
        names = _spellings(macros, self._snake_first)
        body = self._body
        if names[0] in body:  # the usual case: already in the order the sender spelled it
            return names
        present = [n for n in names if n in body]
        if not present:  # an optional macro the sender did not send: the order is already the body's style
            return names
        return (*present, *(n for n in names if n not in body))


@functools.cache
def _spellings(macros: tuple[str, ...], snake_first: bool) -> tuple[str, ...]:
    names: list[str] = []
    for macro in macros:
        spelled = [macro] if macro.startswith("NAGIOS_") else [macro, f"NAGIOS_{macro}"]
        snake = list(_SNAKE.get(macro, ()))
        names += snake + spelled if snake_first else spelled + snake
    return tuple(names)


def normalize(body: Mapping[str, Any], envelope: Envelope) -> Alert | Ignored:
    """Map one Nagios notification to an `Alert`; raise `InvalidAlert` naming every field at fault."""
    fields = Fields(body)
    keys = _Keys(body)

    notification = _word(fields, keys("NOTIFICATIONTYPE"), _KINDS)
    host = fields.text(*keys("HOSTNAME"), required=True)
    declared = fields.choice(keys("pd_nagios_object"), _OBJECTS)
    service = None if declared is _HOST else fields.text(*keys("SERVICEDESC"), required=declared is _SERVICE)
    obj = declared or (_SERVICE if service else _HOST)

    state_keys = keys(obj.state)
    state = _word(fields, state_keys, obj.states)
    if notification == "PROBLEM" and state in _OK_STATES:
        fields.error(state_keys[0], f"a PROBLEM notification cannot be in state {state}")

    problem_id = _problem_id(fields, keys(obj.problem_id))
    last_problem_id = _problem_id(fields, keys(obj.last_problem_id))
    host_display = _host_display(host, fields.text(*keys("HOSTDISPLAYNAME")), fields.text(*keys("HOSTALIAS")))
    output = fields.text(*keys(obj.output))
    long_output = fields.text(*keys(obj.long_output))
    actor = fields.text(*keys("NOTIFICATIONAUTHOR", "ACKAUTHOR", obj.ack_author))
    comment = fields.text(*keys("NOTIFICATIONCOMMENT", "ACKCOMMENT", obj.ack_comment))
    refs = {
        "notification_type": notification,
        "problem_id": problem_id,
        "last_problem_id": last_problem_id,
        "notification_number": fields.text(*keys("NOTIFICATIONNUMBER")),
        "nagios_server": fields.text(*keys("NAGIOS_SERVER")),
        "state": state,
        "state_type": fields.text(*keys(obj.state_type)),
        "long_date_time": fields.text(*keys("LONGDATETIME")),
        # the object's own links (notes_url, action_url); a service's host keeps its links beside them
        "notes_url": fields.text(*keys(f"{obj.prefix}NOTESURL")),
        "action_url": fields.text(*keys(f"{obj.prefix}ACTIONURL")),
        "host_notes_url": fields.text(*keys("HOSTNOTESURL")) if obj is _SERVICE else None,
        "host_action_url": fields.text(*keys("HOSTACTIONURL")) if obj is _SERVICE else None,
    }
    address = fields.text(*keys("HOSTADDRESS"))
    contact = fields.text(*keys("CONTACTEMAIL", "CONTACTNAME", "CONTACTPAGER"))
    timet = fields.text(*keys("TIMET"))
    fields.check()
    assert notification is not None and host is not None and state is not None  # check() raised otherwise

    kind = _KINDS[notification]
    shown = host_display or host
    return Alert(
        id=envelope.alert_id,
        source=envelope.source,
        instance=envelope.instance,
        dedup_key=envelope.key(host if service is None else f"{host}/{service}"),
        kind=kind,
        severity=obj.states[state],
        state_ok=state in _OK_STATES,
        episode_id=_nonzero(problem_id) or (_nonzero(last_problem_id) if kind is Kind.RECOVERY else None),
        previous_episode_id=None if kind is Kind.RECOVERY else _nonzero(last_problem_id),
        host=host,
        host_display=host_display,
        service=service,
        address=address,
        title=f"Host {shown} is {state}" if service is None else f"{service} on {shown} is {state}",
        description="\n".join(part for part in (output, long_output and _unescape(long_output)) if part),
        contact=contact,
        actor=actor,
        comment=comment,
        source_refs={name: value for name, value in refs.items() if value is not None},
        occurred_at=datetime.fromtimestamp(int(timet), UTC) if timet and _EPOCH.fullmatch(timet) else None,
        received_at=envelope.received_at,
        idempotency_key=envelope.idempotency_key,
    )


def _word(fields: Fields, names: tuple[str, ...], words: Iterable[str]) -> str | None:
    """A required vocabulary field, as its canonical upper-case word (senders may vary the case)."""
    return fields.choice(names, {word: word for word in words}, required=True)


def _problem_id(fields: Fields, names: tuple[str, ...]) -> str | None:
    value = fields.text(*names)
    if value is not None and not _PROBLEM_ID.fullmatch(value):
        fields.error(names[0], f"{value!r} is not a problem id (digits only)")
        return None
    return value


def _nonzero(problem_id: str | None) -> str | None:
    """Nagios sends problem id 0 when there is no current problem (after a recovery)."""
    return problem_id if problem_id and int(problem_id) != 0 else None


def _host_display(host: str | None, *names: str | None) -> str | None:
    """The first name that says more than the host name (Nagios defaults display name and alias to it)."""
    return next((name for name in names if name and name != host), None)


def _unescape(long_output: str) -> str:
    """Nagios stores a long output's newlines as `\\n` and doubles its backslashes."""
    return _ESCAPED.sub(lambda match: "\n" if match[1] == "n" else "\\", long_output)
