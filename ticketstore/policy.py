"""What a severity means for a ticket: priority, owner group, response and resolution deadlines, flapping rules.

The defaults are CONTRACT §3's table; a policy file (`ALERTDESK_POLICY`) tunes them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from normalizers.schema import Severity

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


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: str = Field(pattern=r"^P[1-5]$")
    respond_within: Duration | None = None
    resolve_within: Duration | None = None


class FlappingPolicy(BaseModel):
    """A key whose tickets open and resolve `cycles` times within `window` is flapping until `quiet` passes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cycles: int = Field(default=3, ge=2)
    window: Duration = timedelta(hours=1)
    quiet: Duration = timedelta(minutes=30)


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
    severities: dict[Severity, SeverityPolicy] = Field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    flapping: FlappingPolicy = FlappingPolicy()

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        return self.severities.get(severity) or DEFAULT_SEVERITIES[severity]
