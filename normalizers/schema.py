"""The common alert schema every stage speaks, and the errors handling one can raise.

Every stage imports this module and nothing else shared: an `Alert` leaves ingest, a `TicketCommand` leaves
dedup, and both cross process boundaries as JSON (`model_dump_json`), never pickle.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Source(StrEnum):
    NAGIOS = "nagios"
    ZABBIX = "zabbix"
    SOLARWINDS = "solarwinds"


class Severity(StrEnum):
    """The common scale, highest first (CONTRACT §2). Compare with `rank`."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.CRITICAL: 5, Severity.MAJOR: 4, Severity.MINOR: 3, Severity.WARNING: 2, Severity.INFO: 1}


def highest(a: Severity | None, b: Severity | None) -> Severity | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a.rank >= b.rank else b


class Kind(StrEnum):
    """What a notification means for its key's ticket (the rows of CONTRACT §2)."""

    PROBLEM = "problem"  # Nagios PROBLEM, Zabbix problem, Orion trigger
    RECOVERY = "recovery"  # Nagios RECOVERY, Zabbix recovery, Orion reset
    ACKNOWLEDGE = "acknowledge"  # Nagios ACKNOWLEDGEMENT
    COMMENT = "comment"  # Nagios CUSTOM / FLAPPINGDISABLED: annotate only
    UPDATE = "update"  # Zabbix problem update: `Alert.actions` says what happened, in order
    FLAPPING_START = "flapping_start"
    FLAPPING_STOP = "flapping_stop"  # `state_ok` says whether it stopped in OK/UP (then it resolves)
    DOWNTIME_START = "downtime_start"
    DOWNTIME_END = "downtime_end"  # Nagios DOWNTIMEEND and DOWNTIMECANCELLED


class UpdateAction(StrEnum):
    """The words of Zabbix's `{EVENT.UPDATE.ACTION}`, in the order Zabbix lists them."""

    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    COMMENTED = "commented"
    SEVERITY_CHANGED = "severity_changed"  # the new severity is `Alert.severity`
    CLOSED = "closed"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    RANKED = "ranked"  # ranked as symptom / cause: annotate only


class Alert(BaseModel):
    """One notification from a monitoring system, in the common schema.

    `id` is unique per delivery; a client retry carrying the same `Idempotency-Key` gets the same id, which is
    what makes it count once. `episode_id` is the source's id of one problem episode (Nagios problem id,
    Zabbix EVENT.ID, Orion AlertActiveID); it tells late events from new ones.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    id: str
    source: Source
    instance: str | None = None
    dedup_key: str
    kind: Kind
    actions: tuple[UpdateAction, ...] = ()
    severity: Severity | None = None
    state_ok: bool | None = None
    episode_id: str | None = None
    previous_episode_id: str | None = None
    host: str
    host_display: str | None = None
    service: str | None = None
    address: str | None = None
    title: str
    description: str = ""
    contact: str | None = None
    actor: str | None = None
    comment: str | None = None
    source_refs: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    occurred_at: AwareDatetime | None = None
    received_at: AwareDatetime
    idempotency_key: str | None = None


# The longest value the ticket store keeps for each field (its column sizes): longer input is refused with a 422
# at the webhook instead of being accepted and failing later in the store.
FIELD_LIMITS: dict[str, int] = {
    "dedup_key": 512,
    "host": 255,
    "host_display": 255,
    "service": 255,
    "address": 255,
    "contact": 255,
    "actor": 255,
    "episode_id": 64,
}


def check_limits(alert: Alert) -> None:
    """Raise `InvalidAlert` naming every field longer than the store keeps."""
    detail = [
        {"loc": [name], "msg": f"longer than {limit} characters ({len(value)})"}
        for name, limit in FIELD_LIMITS.items()
        if isinstance(value := getattr(alert, name), str) and len(value) > limit
    ]
    if detail:
        raise InvalidAlert(detail)


class Ignored(BaseModel):
    """A well-formed notification with nothing to do (a Zabbix discovery or internal event): 202 ignored."""

    model_config = ConfigDict(frozen=True)

    reason: str


class TicketCommand(BaseModel):
    """What dedup hands the store: one event for a key, or a run of repeated problems folded into one.

    `alert` is the latest alert of the run; `alert_ids` lists every alert folded in, in arrival order, so the
    store can skip those it has already applied and count only the others.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    alert: Alert
    alert_ids: tuple[str, ...]
    peak_severity: Severity | None = None
    first_received_at: AwareDatetime

    @property
    def dedup_key(self) -> str:
        return self.alert.dedup_key

    @classmethod
    def single(cls, alert: Alert) -> TicketCommand:
        # built from a validated Alert: nothing to check again (this runs once per alert)
        return cls.model_construct(
            alert=alert, alert_ids=(alert.id,), peak_severity=alert.severity, first_received_at=alert.received_at
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """What ingest knows about a delivery besides its body; normalizers build the `Alert` inside it."""

    source: Source
    instance: str | None = None
    received_at: datetime
    alert_id: str
    idempotency_key: str | None = None

    def key(self, rest: str) -> str:
        """`dedup_key` for this delivery: `zabbix:trigger/1`, or `zabbix@paris:trigger/1` for an instance."""
        prefix = self.source.value if self.instance is None else f"{self.source.value}@{self.instance}"
        return f"{prefix}:{rest}"


_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d6d0e-4c1b-4f43-9a55-5d0a3b1f7a10")


def alert_id_for(source: Source, instance: str | None, idempotency_key: str | None) -> str:
    """A fresh id, or one derived from the client's Idempotency-Key so that a retry gets the same id.

    The derived id is `uuid.uuid5` of the key in our namespace, written out by hand: a third of the cost, on
    every request that carries a key. It must never change, or retries across an upgrade would count twice.
    """
    if idempotency_key is None:
        return str(uuid.uuid4())
    name = f"{source.value}\x00{instance or ''}\x00{idempotency_key}".encode()
    digest = bytearray(hashlib.sha1(_IDEMPOTENCY_NAMESPACE.bytes + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- errors -----------------------------------------------------------------------------------------------
#
#   AlertdeskError
#     + InvalidAlert        input that can never succeed: 4xx at ingest, dead letter in a worker; never retried
#       - UnknownSource     no normalizer for this source: 404
#     + Unavailable         a dependency (broker, database, endpoint) failed: retried, then 503 / paused consumer
#
# Library exceptions are translated into these where they are raised: normalizers (pydantic), dedup/rabbitmq
# (aio-pika), ticketstore (SQLAlchemy).


class AlertdeskError(Exception):
    """Base of the errors alertdesk raises on purpose."""


class InvalidAlert(AlertdeskError):
    """The input is wrong and will stay wrong. `detail` names each field at fault."""

    def __init__(self, detail: Sequence[dict[str, Any]]) -> None:
        self.detail = [dict(d) for d in detail]
        super().__init__("; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in self.detail))

    @classmethod
    def field(cls, name: str | int, msg: str) -> InvalidAlert:
        return cls([{"loc": [name], "msg": msg}])


class UnknownSource(InvalidAlert):
    def __init__(self, source: str) -> None:
        super().__init__([{"loc": ["source"], "msg": f"unknown source {source!r}"}])


class Unavailable(AlertdeskError):
    """A dependency cannot take the work now; the caller retries later."""
