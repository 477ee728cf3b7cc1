"""Source payload → the common `Alert`. Pure functions, no I/O.

Adding a source: one module exposing `normalize(body, envelope)`, one line in `NORMALIZERS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from normalizers import nagios, solarwinds, zabbix
from normalizers.schema import (
    Alert,
    Envelope,
    Ignored,
    InvalidAlert,
    Source,
    UnknownSource,
    alert_id_for,
    check_limits,
)

SourceNormalizer = Callable[[Mapping[str, Any], Envelope], Alert | Ignored]

NORMALIZERS: dict[Source, SourceNormalizer] = {
    Source.NAGIOS: nagios.normalize,
    Source.ZABBIX: zabbix.normalize,
    Source.SOLARWINDS: solarwinds.normalize,
}

_INSTANCE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def parse_source(source: str) -> Source:
    try:
        return Source(source)
    except ValueError:
        raise UnknownSource(source) from None


def normalize(
    source: str,
    body: Mapping[str, Any],
    *,
    received_at: datetime,
    instance: str | None = None,
    idempotency_key: str | None = None,
) -> Alert | Ignored:
    """Map one decoded webhook body to an `Alert` (or `Ignored`); raise `InvalidAlert` naming the fields at fault."""
    src = parse_source(source)
    if instance is not None and not _INSTANCE.match(instance):
        raise InvalidAlert([{"loc": ["instance"], "msg": "must match [a-z0-9][a-z0-9_-]{0,62}"}])
    envelope = Envelope(
        source=src,
        instance=instance,
        received_at=received_at,
        alert_id=alert_id_for(src, instance, idempotency_key),
        idempotency_key=idempotency_key,
    )
    result = NORMALIZERS[src](body, envelope)
    if isinstance(result, Alert):
        check_limits(result)
    return result


__all__ = ["NORMALIZERS", "normalize", "parse_source"]
