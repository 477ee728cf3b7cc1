"""A crash between send and record, for each tracker: a Zabbix problem into a real `alertdesk run`, which dies
(SIGKILL) after the tracker made the record and before its answer was recorded. The restarted process finds the
record by its correlation id instead of making a second, and the record resolved in the tracker resolves the
alertdesk ticket, with the person who did it.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fake_jira import FakeJira
from tests.fake_servicenow import FakeServiceNow
from tests.fake_tracker import FakeTracker
from tests.fake_zendesk import FakeZendesk
from tests.process import AlertdeskProcess
from tests.tracker_harness import facts, fake_fixture, records, resolved_remotely, tracker_entry
from tests.tracker_side import post, until, until_async

pytestmark = pytest.mark.slow

ZABBIX_PROBLEM = Path(__file__).parent / "payloads" / "zabbix" / "ingest-problem-cpu.json"

fake = fake_fixture({"servicenow": FakeServiceNow, "jira": FakeJira, "zendesk": FakeZendesk})


async def test_kill_9_between_create_and_record_leaves_one_record_resolved_from_the_tracker(
    database: tuple[str, str | None], fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    url, schema = database
    policy = tmp_path / "policy.yaml"  # YAML, written as JSON (a subset)
    routes = [{"match": {"source": "zabbix"}, "tracker": said.name}]
    trackers = {said.name: tracker_entry(fake, tmp_path, timeout=1.0)}
    policy.write_text(json.dumps({"trackers": trackers, "routes": routes}))
    env = {
        "ALERTDESK_POLICY": str(policy),
        "ALERTDESK_DATABASE_URL": url,
        **({"ALERTDESK_DATABASE_SCHEMA": schema} if schema else {}),
    }
    fake.hold_creates = asyncio.Event()  # the record is made, its answer waits

    first = await asyncio.to_thread(AlertdeskProcess(tmp_path, env).start)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{first.url}/webhooks/zabbix", json=json.loads(ZABBIX_PROBLEM.read_text())) as r:
                assert r.status == 202
            await until(lambda: len(records(fake)) == 1)
            first.stop(signal.SIGKILL)
            fake.hold_creates.set()
            fake.hold_creates = None

            second = await asyncio.to_thread(AlertdeskProcess(tmp_path, env).start)
            try:
                found: dict[str, Any] = {}

                async def recorded() -> bool:
                    async with session.get(f"{second.url}/api/tickets/1") as resp:
                        found.update(await resp.json())
                    return bool(found["external_refs"])

                await until_async(recorded, within=40)
                # the key and the line that says where it came from are written together: never one without the other
                tracker_lines = [h["detail"] for h in found["history"] if h["kind"] == "tracker"]
                assert tracker_lines == [f"{said.title} {said.key} found (made by an earlier attempt)"]
                inbound = f"{second.url}/api/trackers/{said.name}/events"
                assert await post(inbound, resolved_remotely(fake)) == (200, {"applied": True, "ticket": "INC-000001"})
                async with session.get(f"{second.url}/api/tickets/1") as resp:
                    after = await resp.json()
            finally:
                second.stop()
    finally:
        first.stop(signal.SIGKILL)

    assert len(records(fake)) == 1
    method, path = said.create.split(" ")
    assert [(m, p) for m, p, _ in fake.requests if m == method and p == path] == [(method, path)]  # the crashed one's
    assert found["external_refs"] == {said.name: said.key}
    details = [h["detail"] for h in found["history"] if h["kind"] == "tracker"]
    assert details == [f"{said.title} {said.key} found (made by an earlier attempt)"]
    assert (after["status"], after["history"][-1]["actor"]) == ("resolved", said.resolver)
