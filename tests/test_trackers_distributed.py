"""A tracker with the distributed pipeline: a Zabbix problem through `alertdesk ingest`, `dedup` and `store`
(RabbitMQ, PostgreSQL) appears once in Zendesk, and the Zendesk trigger's "solved" sent to the store's inbound
endpoint resolves the ticket once, with the agent as actor, and is not echoed back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.cluster import Pipeline, eventually, ticket
from tests.fake_zendesk import FakeZendesk
from tests.tracker_harness import fake_fixture
from tests.tracker_side import INBOUND_TOKEN, post

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

ZABBIX_PROBLEM = Path(__file__).parent / "payloads" / "zabbix" / "ingest-problem-cpu.json"


zendesk = fake_fixture({"zendesk": FakeZendesk})


@pytest.fixture
async def pipeline(tmp_path: Path, zendesk: FakeZendesk) -> AsyncIterator[Pipeline]:
    (tmp_path / "zd.token").write_text(zendesk.token)
    (tmp_path / "zd.inbound").write_text(INBOUND_TOKEN)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "trackers:\n"
        f"  zd: {{type: zendesk, url: '{zendesk.url}', user: {zendesk.email},"
        f" token_file: '{tmp_path / 'zd.token'}', inbound_token_file: '{tmp_path / 'zd.inbound'}', timeout: 2}}\n"
        "routes:\n"
        "  - {match: {source: zabbix}, tracker: zd}\n",
        encoding="utf-8",
    )
    pipe = Pipeline(tmp_path, extra_env={"ALERTDESK_POLICY": str(policy)})
    try:
        yield await pipe.start(workers=1)
    finally:
        await pipe.close()


async def test_a_ticket_stored_by_alertdesk_store_is_mirrored_once_and_solved_from_zendesk(
    pipeline: Pipeline, zendesk: FakeZendesk
) -> None:
    (store,) = pipeline.store
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{pipeline.url}/webhooks/zabbix", json=json.loads(ZABBIX_PROBLEM.read_text())) as r:
            assert r.status == 202

        async def mirrored() -> bool:
            async with session.get(f"{store.url}/api/tickets/1") as resp:  # 404 until the store has it
                return resp.status == 200 and bool((await resp.json())["external_refs"])

        await eventually(mirrored, 40, pipeline.logs)
        solved = {
            "event": "update",
            "ticket_id": "4711",
            "external_id": "INC-000001",
            "updated_at": "2026-03-14 10:41:00 +0000",
            "status": "solved",
            "updated_by": "jane.doe@example.com",
            "updated_by_name": "Jane Doe",
        }
        url = f"{store.url}/api/trackers/zd/events"
        assert (await post(url, solved, token="wrong"))[0] == 401
        assert await post(url, solved) == (200, {"applied": True, "ticket": "INC-000001"})
        assert await post(url, solved) == (200, {"applied": False, "ticket": "INC-000001"})  # redelivered
        await asyncio.sleep(3)  # three rounds of the store's trackers loop: nothing goes back to Zendesk
        after = await ticket(session, store.url, 1)

    (remote,) = zendesk.tickets
    assert remote.fields["external_id"] == "INC-000001"
    assert after["external_refs"] == {"zd": "4711"}
    assert (after["status"], after["history"][-1]["kind"], after["history"][-1]["actor"]) == (
        "resolved",
        "resolved",
        "Jane Doe",
    )
    assert [h["kind"] for h in after["history"]].count("resolved") == 1
    assert [m for m, _, _ in zendesk.requests if m != "GET"] == ["POST"]  # the create; no update echoed
    assert len(remote.comments) == 1
