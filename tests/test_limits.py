"""Values longer than the ticket store keeps are refused at the webhook (422), not accepted and lost later."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import normalizers
from normalizers.schema import FIELD_LIMITS, InvalidAlert

RECEIVED = datetime(2026, 3, 14, 9, 26, 41, tzinfo=UTC)


def problem(host: str, service: str = "DISK /") -> dict[str, str]:
    return {"NOTIFICATIONTYPE": "PROBLEM", "HOSTNAME": host, "SERVICEDESC": service, "SERVICESTATE": "CRITICAL"}


def test_a_host_as_long_as_the_store_keeps_is_accepted() -> None:
    alert = normalizers.normalize("nagios", problem("h" * FIELD_LIMITS["host"]), received_at=RECEIVED)
    assert len(alert.host) == 255


def test_longer_fields_are_refused_each_by_name() -> None:
    with pytest.raises(InvalidAlert) as refused:
        normalizers.normalize("nagios", problem("h" * 256, "s" * 300), received_at=RECEIVED)
    assert [d["loc"] for d in refused.value.detail] == [["dedup_key"], ["host"], ["service"]]
    assert "longer than 255 characters (256)" in refused.value.detail[1]["msg"]
