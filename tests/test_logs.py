"""`ALERTDESK_LOG_FORMAT=json`: every line a log collector reads is one JSON object, and none gives a secret away."""

from __future__ import annotations

import io
import json
import logging
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertdesk.logs import JsonFormatter
from tests.process import AlertdeskProcess

TOKEN = "n4g10s-t0ken-from-a-file"
MARKER = "DISK CRITICAL - free space marker-5c1f"  # in the payload only


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each line parsed on its own, as a collector does; a line that is not one JSON object fails the test."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def test_a_line_carries_time_level_logger_message_extras_and_the_exception() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("refused %s webhook", "zabbix", extra={"source": "zabbix", "refusals": 3})
        try:
            raise ValueError("no such ticket")
        except ValueError:
            log.exception("batch failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True

    first, second = json_lines(stream.getvalue())
    assert datetime.fromisoformat(first.pop("time")).utcoffset() == timedelta(0)
    assert first == {
        "level": "WARNING",
        "logger": "tests.json",
        "message": "refused zabbix webhook",
        "source": "zabbix",
        "refusals": 3,
    }
    assert second["message"] == "batch failed"
    assert second["exception"].startswith("Traceback (most recent call last):")
    assert second["exception"].endswith("ValueError: no such ticket")


def nagios_problem(problem_id: str) -> dict[str, str]:
    return {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": "web-01",
        "SERVICEDESC": "DISK /",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": MARKER,
        "SERVICEPROBLEMID": problem_id,
        "LASTSERVICEPROBLEMID": "0",
        "pd_nagios_object": "service",
    }


@pytest.mark.slow
async def test_alertdesk_run_logs_one_json_object_a_line_without_token_or_payload(tmp_path: Path) -> None:
    (tmp_path / "nagios_token").write_text(f"{TOKEN}\n")
    started = datetime.now(UTC)
    env = {
        "ALERTDESK_LOG_FORMAT": "json",
        "ALERTDESK_LOG_LEVEL": "INFO",
        "ALERTDESK_ACCESS_LOG": "true",
        "ALERTDESK_NAGIOS_TOKEN_FILE": str(tmp_path / "nagios_token"),
    }
    alertdesk = AlertdeskProcess(tmp_path, env).start()
    try:
        async with aiohttp.ClientSession() as session:
            webhook = f"{alertdesk.url}/webhooks/nagios"
            async with session.post(webhook, params={"token": TOKEN}, data=nagios_problem("1")) as resp:
                assert resp.status == 202
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            async with session.post(webhook, headers=bearer, data=nagios_problem("2")) as resp:
                assert resp.status == 202
            async with session.post(webhook, params={"token": "wrong"}, data=nagios_problem("3")) as resp:
                assert resp.status == 401
    finally:
        assert alertdesk.stop(signal.SIGTERM) == 0
    output = alertdesk.output()

    lines = json_lines(output)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert started - timedelta(seconds=1) <= datetime.fromisoformat(line["time"]) <= datetime.now(UTC)
        assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)
    messages = [line["message"] for line in lines]
    assert any(m.startswith("listening on http://") for m in messages)
    assert messages[-1] == "stopped"
    (refusal,) = (line for line in lines if line["message"].startswith("refused"))
    assert refusal == {**refusal, "level": "INFO", "source": "nagios", "status": 401, "reason": "unauthorized"}
    accesses = [line for line in lines if line["logger"] == "aiohttp.access" and line["path"] != "/healthz"]
    assert [a["status"] for a in accesses] == [202, 202, 401]
    assert [a["path"] for a in accesses] == [
        "/webhooks/nagios?token=***",
        "/webhooks/nagios",
        "/webhooks/nagios?token=***",
    ]
    assert TOKEN not in output
    assert "marker-5c1f" not in output
