"""The failures every tracker meets, run against each of ServiceNow, Jira (Cloud and Data Center) and Zendesk: a create's answer
lost after the record was made, 429 with Retry-After, 503 for a while, credentials refused until the file is fixed,
giving up, a slow server; and inbound events that are refused. The user sees one remote record per ticket and every failure in the ticket's history.

The outbox's retry schedule runs on the injected clock; only the HTTP calls take real time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

from dedup.fold import fold
from tests.conftest import Clock
from tests.fake_jira import FakeJira
from tests.fake_servicenow import FakeServiceNow
from tests.fake_tracker import FakeTracker
from tests.fake_zendesk import FakeZendesk
from tests.tracker_harness import (
    facts,
    fake_fixture,
    mirrored,
    policy_for,
    records,
    remote_status,
    resolved_remotely,
    rotate,
    secret_file,
)
from tests.tracker_side import history, post, problem, side, ticket, tracker_rows
from ticketstore import actions
from ticketstore.db import Engines

fake = fake_fixture(
    {
        "servicenow": FakeServiceNow,
        "jira-cloud": FakeJira,
        "jira-datacenter": lambda port: FakeJira(port, version=2, user=None),  # REST v2, a PAT as Bearer
        "zendesk": FakeZendesk,
    }
)


def creates(fake: FakeTracker) -> int:
    method, path = facts(fake).create.split(" ")
    return sum(1 for m, p, _ in fake.requests if (m, p) == (method, path))


async def test_a_lost_create_answer_finds_the_record_instead_of_making_a_second(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    fake.lose_create_answers = 1
    async with side(engines, policy_for(fake, tmp_path), clock) as s:
        await s.store.apply_batch(fold([problem(clock)]))
        assert await s.dispatcher.run_once() == 1  # created, answer lost
        assert len(records(fake)) == 1
        assert (await ticket(engines)).external_refs == {}
        clock.advance(seconds=10)
        assert await s.dispatcher.run_once() == 1

    assert len(records(fake)) == 1
    assert creates(fake) == 1
    assert (await ticket(engines)).external_refs == {said.name: said.key}
    (failed,) = await history(engines, "tracker_failed")
    assert f"opened (level 0) via tracker:{said.name}: {said.create}: ServerDisconnectedError" in failed[2]
    assert await history(engines, "tracker") == [
        ("tracker", None, f"{said.title} {said.key} found (made by an earlier attempt)")
    ]


async def test_429_waits_as_long_as_retry_after_says(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    fake.queued = [(429, {"Retry-After": "120"})]
    async with side(engines, policy_for(fake, tmp_path), clock) as s:
        await s.store.apply_batch(fold([problem(clock)]))
        opened = clock()
        assert await s.dispatcher.run_once() == 1
        ((_, status, attempts, next_at),) = await tracker_rows(engines, said.name)
        assert (status, attempts, next_at) == ("pending", 1, opened + timedelta(seconds=120))
        clock.advance(seconds=119)
        assert await s.dispatcher.run_once() == 0
        clock.advance(seconds=1)
        assert await s.dispatcher.run_once() == 1

    assert len(records(fake)) == 1
    ((_, _, detail),) = await history(engines, "tracker_failed")
    assert f"HTTP 429 from {said.search}: {said.too_many}; retrying in 0:02:00" in detail


async def test_retry_after_as_an_http_date_counts_from_the_injected_clock(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    fake.queued = [(503, {"Retry-After": format_datetime(clock() + timedelta(seconds=90), usegmt=True)})]
    async with side(engines, policy_for(fake, tmp_path), clock) as s:
        await s.store.apply_batch(fold([problem(clock)]))
        assert await s.dispatcher.run_once() == 1

    ((_, status, _, next_at),) = await tracker_rows(engines, facts(fake).name)
    assert (status, next_at) == ("pending", clock() + timedelta(seconds=90))


async def test_503_for_a_while_every_failure_in_the_history_then_one_record(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    fake.queued = [(503, {})] * 3  # no Retry-After: the outbox's growing delay
    async with side(engines, policy_for(fake, tmp_path), clock) as s:
        await s.store.apply_batch(fold([problem(clock)]))
        for wait in (10, 20, 40):
            assert await s.dispatcher.run_once() == 1
            clock.advance(seconds=wait)
        assert await s.dispatcher.run_once() == 1

    assert len(records(fake)) == 1
    assert (await ticket(engines)).external_refs == {said.name: said.key}
    failures = [detail for _, _, detail in await history(engines, "tracker_failed")]
    assert [f.rsplit("retrying in ", 1)[1] for f in failures] == ["0:00:10", "0:00:20", "0:00:40"]
    assert all(f"HTTP 503 from {said.search}: {said.unavailable}" in f for f in failures)


async def test_refused_credentials_are_retried_slowly_until_the_file_is_fixed_without_a_restart(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    policy = policy_for(fake, tmp_path)
    rotate(fake, "rotated-2")  # the tracker's admin rotated it; alertdesk's file still holds the old one
    async with side(engines, policy, clock) as s:
        await s.store.apply_batch(fold([problem(clock)]))
        assert await s.dispatcher.run_once() == 1
        clock.advance(minutes=4)
        assert await s.dispatcher.run_once() == 0  # slowly: five minutes
        clock.advance(minutes=1)
        assert await s.dispatcher.run_once() == 1
        assert records(fake) == []
        secret_file(fake, tmp_path).write_text("rotated-2\n")
        clock.advance(minutes=5)
        assert await s.dispatcher.run_once() == 1

    assert len(records(fake)) == 1
    assert (await ticket(engines)).external_refs == {said.name: said.key}
    failures = await history(engines, "tracker_failed")
    assert len(failures) == 2
    assert all(
        f"HTTP 401 from {said.search}: {said.unauthenticated} (check the credentials)" in d for *_, d in failures
    )


async def test_giving_up_is_in_the_history_and_the_next_event_makes_the_record(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    fake.queued = [(503, {"Retry-After": "1"})] * 2
    async with side(engines, policy_for(fake, tmp_path), clock, max_attempts=2) as s:
        await s.store.apply_batch(fold([problem(clock)]))
        await s.dispatcher.run_once()
        clock.advance(seconds=1)
        await s.dispatcher.run_once()
        assert [r.status for r in await tracker_rows(engines, said.name)] == ["failed"]
        assert records(fake) == []
        await s.store.act(1, actions.acknowledge("maria.rossi"))
        assert await s.drain() == 1

    assert len(records(fake)) == 1
    assert remote_status(fake) == said.acknowledged
    gave_up = [d for _, _, d in await history(engines, "tracker_failed") if "gave up" in d]
    assert gave_up == [
        f"opened (level 0) via tracker:{said.name}: gave up after 2 attempts: "
        f"HTTP 503 from {said.search}: {said.unavailable}"
    ]


async def test_a_slow_tracker_slows_neither_the_store_nor_its_own_loop_forever(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    fake.delay = 6.0
    async with side(engines, policy_for(fake, tmp_path, timeout=2.0), clock) as s:
        await s.store.apply_batch(fold([problem(clock)]))
        call = asyncio.create_task(s.dispatcher.run_once())
        await asyncio.sleep(0.1)  # the call is in flight
        started = time.monotonic()
        await s.store.apply_batch(fold([problem(clock, host="db-paris-02")]))
        await s.store.act(1, actions.comment("maria.rossi", "looking"))
        store_took = time.monotonic() - started
        assert not call.done()  # the tracker call is still waiting while the store has long finished
        assert await call == 1
        call_took = time.monotonic() - started

    assert store_took < 1.5 <= call_took < 4.0  # bounded by the tracker's timeout (2 s), not the server's 6 s
    ((_, _, detail),) = await history(engines, "tracker_failed")
    assert f"{said.search}: TimeoutError" in detail


async def test_inbound_refusals_name_what_is_wrong_and_change_nothing(
    engines: Engines, clock: Clock, fake: FakeTracker, tmp_path: Path
) -> None:
    said = facts(fake)
    async with mirrored(engines, fake, tmp_path, clock) as (_, url):
        body = resolved_remotely(fake)
        assert (await post(url, body, token="wrong"))[0] == 401
        assert (await post(url.replace(f"/{said.name}/", "/nosuch/"), body))[0] == 404
        status, answer = await post(url, {k: v for k, v in body.items() if k != said.required})
        assert (status, answer["detail"][0]["loc"]) == (422, ["body", said.required])
        status, answer = await post(url, resolved_remotely(fake, "CHG0000042"))  # not an alertdesk number
        assert (status, answer["detail"][0]["loc"]) == (422, ["body", *said.number_at])
        assert (await post(url, resolved_remotely(fake, "INC-000999")))[0] == 404

    assert (await ticket(engines)).status == "open"
    assert await history(engines, "resolved") == []
