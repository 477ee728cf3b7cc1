"""What a severity means for a ticket: priority, owner group, response and resolution deadlines, flapping rules.

The defaults are CONTRACT §3's table; a policy file (`ALERTDESK_POLICY`) tunes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from normalizers.schema import Alert, AlertdeskError, Severity
from ticketstore.calendar import BusinessHours
from ticketstore.runbook import check_template, render
from ticketstore.tracker_policy import Tracker

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> Any:
    """`30s`, `15m`, `4h`, `2d` → timedelta (other values are left for pydantic to judge)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration like 30s, 15m, 4h or 2d")
        return timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Runbook = Annotated[str, AfterValidator(check_template)]


class Channel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["webhook", "slack", "teams", "webex"]
    url: str = Field(pattern=r"^https?://")


Event = Literal["opened", "severity_raised", "sla_breached", "resolved"]


class EscalationStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    after: Duration
    group: str | None = None
    notify: tuple[str, ...] = ()


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: str = Field(pattern=r"^P[1-5]$")
    respond_within: Duration | None = None
    resolve_within: Duration | None = None
    # on open, severity rise, SLA breach and resolve: a list for all four, or a list per event, e.g.
    # {opened: [ops-slack], resolved: [ops-hook]} (an event left out notifies nobody)
    notify: tuple[str, ...] | dict[Event, tuple[str, ...]] = ()
    escalation: tuple[EscalationStep, ...] = ()  # while unacknowledged, counted from opening
    business_hours: bool = False  # count deadlines and steps in the policy's business hours only
    runbook: Runbook | None = None  # link template, e.g. https://wiki.example.com/runbooks/{source}/{service}
    tracker: str | None = None  # the tracker (policy `trackers:`) that mirrors this severity's tickets

    def channels_for(self, event: str) -> tuple[str, ...]:
        if isinstance(self.notify, dict):
            return next((names for name, names in self.notify.items() if name == event), ())
        return self.notify

    def all_channels(self) -> tuple[str, ...]:
        if isinstance(self.notify, dict):
            return tuple(n for names in self.notify.values() for n in names)
        return self.notify

    @model_validator(mode="after")
    def _steps_in_order(self) -> SeverityPolicy:
        afters = [step.after for step in self.escalation]
        if afters != sorted(afters):
            raise ValueError("escalation steps must be in increasing order of `after`")
        return self


class Route(BaseModel):
    """First match sets the group on open; `match` values are shell-style patterns (`db*`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: dict[Literal["source", "host", "service", "severity", "instance"], str]
    group: str | None = None  # None: the default group
    runbook: Runbook | None = None  # wins over the severity's
    tracker: str | None = None  # wins over the severity's

    def matches(self, alert: Alert) -> bool:
        fields = {
            "source": alert.source.value,
            "host": alert.host,
            "service": alert.service or "",
            "severity": alert.severity.value if alert.severity else "",
            "instance": alert.instance or "",
        }
        return _matches(self.match, fields)


class FlappingPolicy(BaseModel):
    """A key whose tickets open and resolve `cycles` times within `window` is flapping until `quiet` passes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cycles: int = Field(default=3, ge=2)
    window: Duration = timedelta(hours=1)
    quiet: Duration = timedelta(minutes=30)


class Override(BaseModel):
    """Tuning for some alerts: the first override whose `match` fits (source, severity, instance) applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: dict[Literal["source", "severity", "instance"], str]
    reopen_within: Duration | None = None
    flapping: FlappingPolicy | None = None

    def matches(self, source: str, severity: str, instance: str | None) -> bool:
        return _matches(self.match, {"source": source, "severity": severity, "instance": instance or ""})


def _matches(match: Mapping[Any, str], fields: Mapping[str, str]) -> bool:
    """Every field named in `match` fits its shell-style pattern."""
    return all(fnmatchcase(fields[name], pattern) for name, pattern in match.items())


DEFAULT_SEVERITIES: dict[Severity, SeverityPolicy] = {
    Severity.CRITICAL: SeverityPolicy(
        priority="P1", respond_within=timedelta(minutes=15), resolve_within=timedelta(hours=4)
    ),
    Severity.MAJOR: SeverityPolicy(
        priority="P2", respond_within=timedelta(minutes=30), resolve_within=timedelta(hours=8)
    ),
    Severity.MINOR: SeverityPolicy(
        priority="P3", respond_within=timedelta(hours=4), resolve_within=timedelta(hours=24)
    ),
    Severity.WARNING: SeverityPolicy(
        priority="P4", respond_within=timedelta(hours=8), resolve_within=timedelta(hours=72)
    ),
    Severity.INFO: SeverityPolicy(priority="P5"),
}


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default_group: str = "service-desk"
    channels: dict[str, Channel] = Field(default_factory=dict)
    severities: dict[Severity, SeverityPolicy] = Field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    routes: tuple[Route, ...] = ()
    flapping: FlappingPolicy = FlappingPolicy()
    reopen_within: Duration = timedelta(0)  # 0: a new problem after a resolve always opens a new ticket
    overrides: tuple[Override, ...] = ()
    business_hours: BusinessHours | None = None
    trackers: dict[str, Tracker] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_priorities(cls, data: Any) -> Any:
        """A severity written without `priority` (e.g. `critical: {tracker: snow}`) keeps the default one."""
        if isinstance(data, dict) and isinstance(data.get("severities"), dict):
            severities = {}
            for name, rule in data["severities"].items():
                default = next((d.priority for s, d in DEFAULT_SEVERITIES.items() if s.value == name), None)
                if isinstance(rule, dict) and "priority" not in rule and default is not None:
                    rule = {"priority": default, **rule}
                severities[name] = rule
            data = {**data, "severities": severities}
        return data

    @model_validator(mode="after")
    def _channels_exist(self) -> Policy:
        for severity, rule in self.severities.items():
            names = [*rule.all_channels(), *(n for step in rule.escalation for n in step.notify)]
            unknown = sorted(set(names) - self.channels.keys())
            if unknown:
                raise ValueError(f"severities.{severity.value}: unknown channel(s) {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _trackers_exist(self) -> Policy:
        named = [(f"severities.{s.value}", rule.tracker) for s, rule in self.severities.items()]
        named += [(f"routes.{i}", route.tracker) for i, route in enumerate(self.routes)]
        for where, name in named:
            if name is not None and name not in self.trackers:
                raise ValueError(f"{where}.tracker: unknown tracker {name!r} (not in trackers)")
        return self

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        return self.severities.get(severity) or DEFAULT_SEVERITIES[severity]

    @model_validator(mode="after")
    def _calendar_exists(self) -> Policy:
        uses = [s.value for s, rule in self.severities.items() if rule.business_hours]
        if uses and self.business_hours is None:
            raise ValueError(f"severities {', '.join(uses)} use business_hours, but no business_hours is defined")
        return self

    def route(self, alert: Alert) -> str | None:
        return next((r.group for r in self.routes if r.matches(alert)), None)

    def runbook_url(self, alert: Alert, severity: Severity) -> str | None:
        """The first matching route's runbook, else the severity's, filled in with the alert's fields."""
        template = self._routed(alert, "runbook") or self.for_severity(severity).runbook
        if template is None:
            return None
        fields = {
            "source": alert.source.value,
            "instance": alert.instance,
            "host": alert.host,
            "service": alert.service,
            "dedup_key": alert.dedup_key,
        }
        return render(template, fields)

    def tracker_for(self, alert: Alert, severity: Severity) -> str | None:
        """The tracker that mirrors the ticket: the first matching route's, else the severity's (route wins)."""
        return self._routed(alert, "tracker") or self.for_severity(severity).tracker

    def _routed(self, alert: Alert, field: str) -> str | None:
        route = next((r for r in self.routes if r.matches(alert)), None)
        return None if route is None else getattr(route, field)

    def deadline(self, severity: Severity, start: datetime, within: timedelta | None) -> datetime | None:
        """`start + within`, in business time when this severity counts business hours."""
        if within is None:
            return None
        if self.for_severity(severity).business_hours and self.business_hours is not None:
            return self.business_hours.add(start, within)
        return start + within

    def elapsed(self, severity: Severity, start: datetime, end: datetime) -> timedelta:
        """`end - start` as this severity's deadlines count time: business time when it counts business hours."""
        if self.for_severity(severity).business_hours and self.business_hours is not None:
            return self.business_hours.between(start, end)
        return max(end - start, timedelta(0))

    def flapping_for(self, source: str, severity: str, instance: str | None) -> FlappingPolicy:
        found = self._override(source, severity, instance, "flapping")
        return found.flapping if found is not None and found.flapping is not None else self.flapping

    def longest_flapping_window(self) -> timedelta:
        return max([self.flapping.window, *(o.flapping.window for o in self.overrides if o.flapping)])

    def reopen_window(self, source: str, severity: str, instance: str | None) -> timedelta:
        found = self._override(source, severity, instance, "reopen_within")
        return found.reopen_within if found is not None and found.reopen_within is not None else self.reopen_within

    def _override(self, source: str, severity: str, instance: str | None, field: str) -> Override | None:
        return next(
            (o for o in self.overrides if getattr(o, field) is not None and o.matches(source, severity, instance)),
            None,
        )


class PolicyError(AlertdeskError):
    """The policy file cannot be used; the message names the file, line and field at fault."""


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        root = yaml.compose(text)
        problems = "; ".join(_problem(root, e["loc"], e["msg"]) for e in exc.errors())
        raise PolicyError(f"{path}: {problems}") from None


def _problem(root: yaml.Node | None, loc: tuple[Any, ...], msg: str) -> str:
    """`severities.major.respond_within: <why> (line 7)`: the path, the reason, the line of the node at fault."""
    path = ".".join(str(part) for part in loc)
    msg = msg.removeprefix("Value error, ")
    line = _line(root, loc)
    return (f"{path}: {msg}" if path else msg) + (f" (line {line})" if line else "")


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Walk the YAML node tree along `loc`; the line of the deepest node reached (1-based)."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(
                ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None
            )
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
