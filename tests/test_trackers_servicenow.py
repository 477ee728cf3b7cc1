"""ServiceNow as the team sees it: one incident per alertdesk ticket, following it from open to resolution, and
the team's changes in ServiceNow taken back — against a local server speaking the Table API (tests/fake_servicenow.py).

The failures every tracker meets (lost answers, 429, 503, 401, giving up, slowness, refused inbound events) are in
test_trackers_failures.py, the kill -9 between send and record in test_trackers_crash.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dedup.fold import fold
from tests import tracker_side as ts
from tests.conftest import Clock
from tests.fake_servicenow import FakeServiceNow
from tests.tracker_harness import fake_fixture, mirrored, policy_for
from ticketstore import actions
from ticketstore.db import Engines
from ticketstore.escalation.scan import escalate_due

snow = fake_fixture({"servicenow": FakeServiceNow})


# --- outbound ----------------------------------------------------------------------------------------------------


async def test_one_incident_follows_the_ticket_from_open_to_resolution(
    engines: Engines, clock: Clock, snow: FakeServiceNow, tmp_path: Path
) -> None:
    async with ts.side(engines, policy_for(snow, tmp_path), clock) as s:
        await s.store.apply_batch(fold([ts.problem(clock)]))
        assert await s.drain() == 1

        (incident,) = snow.incidents
        assert incident.fields["number"] == "INC0010001"
        assert incident.fields["short_description"] == ts.TITLE
        assert incident.fields["correlation_id"] == "INC-000001"
        assert incident.fields["correlation_display"] == "alertdesk"
        assert (incident.fields["impact"], incident.fields["urgency"]) == ("1", "1")  # P1: ServiceNow's Critical
        assert f"Runbook: {ts.RUNBOOK}" in incident.fields["description"].splitlines()
        assert (await ts.ticket(engines)).external_refs == {"snow": "INC0010001"}
        assert (await ts.ticket(engines)).runbook_url == ts.RUNBOOK
        assert await ts.history(engines, "tracker") == [("tracker", None, "ServiceNow incident INC0010001 created")]

        clock.advance(minutes=16)
        await escalate_due(s.store)
        assert await s.drain() == 2  # the response SLA breach and the escalation step, as work notes
        await s.store.act(1, actions.acknowledge("maria.rossi"))
        await s.drain()
        assert incident.fields["state"] == "2"  # In Progress
        await s.store.act(1, actions.comment("maria.rossi", "purging binlogs older than 3 days"))
        clock.advance(minutes=5)
        await s.store.act(1, actions.resolve("maria.rossi"))
        assert await s.drain() == 2

    assert len(snow.incidents) == 1
    assert [m for m, p, _ in snow.requests if m == "POST"] == ["POST"]
    assert incident.fields["state"] == "6"  # Resolved
    assert incident.fields["close_code"] == "Solved (Permanently)"
    assert incident.fields["close_notes"] == "Resolved in alertdesk by maria.rossi: resolved by operator"
    notes = incident.work_notes
    assert notes[0].startswith("alertdesk sla breached: response: not acknowledged by 2026-03-14 03:15:00Z")
    assert notes[1] == "alertdesk escalated: level 1: unacknowledged after 0:15:00, assigned to oncall-l2"
    assert notes[2:] == [
        "alertdesk acknowledged by maria.rossi",
        "alertdesk comment by maria.rossi: purging binlogs older than 3 days",
    ]
    assert s.registry.get_sample_value("alertdesk_tracker_events_total", {"tracker": "snow", "outcome": "sent"}) == 6


async def test_a_keys_new_ticket_links_the_previous_incident(
    engines: Engines, clock: Clock, snow: FakeServiceNow, tmp_path: Path
) -> None:
    async with ts.side(engines, policy_for(snow, tmp_path), clock) as s:
        await s.store.apply_batch(fold([ts.problem(clock)]))
        await ts.same_problem_again(s, clock)

    first, second = snow.incidents
    assert (first.fields["correlation_id"], second.fields["correlation_id"]) == ("INC-000001", "INC-000002")
    assert first.fields["state"] == "6"
    assert "Follows INC0010001 (alertdesk INC-000001), same problem before" in second.fields["description"]
    assert (await ts.ticket(engines, 2)).external_refs == {"snow": "INC0010002"}


async def test_answers_that_are_not_the_table_api_are_failures_in_the_history_not_a_stuck_loop(
    engines: Engines, clock: Clock, snow: FakeServiceNow, tmp_path: Path
) -> None:
    snow.hibernating = 1  # a developer instance asleep answers 200 with a web page
    snow.empty_create_answers = 1
    async with ts.side(engines, policy_for(snow, tmp_path), clock) as s:
        await s.store.apply_batch(fold([ts.problem(clock)]))
        for wait in (10, 20, 0):
            assert await s.dispatcher.run_once() == 1
            clock.advance(seconds=wait)

    assert len(snow.incidents) == 1  # the empty answer's incident, found on the third attempt
    assert (await ts.ticket(engines)).external_refs == {"snow": "INC0010001"}
    failures = [d for _, _, d in await ts.history(engines, "tracker_failed")]
    assert "GET /api/now/table/incident: the answer is not JSON" in failures[0]
    assert "unexpected answer from the tracker (KeyError: 'number')" in failures[1]


# --- inbound -----------------------------------------------------------------------------------------------------


def business_rule(mod: int, *, by: str = "jane.doe", state: str = "1", changed: Sequence[str] = (), **more: str) -> Any:
    """The body of deploy/trackers/servicenow.md's business rule."""
    return {
        "sys_id": "9d385017c611228701d22104cc95c371",
        "sys_mod_count": mod,
        "number": "INC0010001",
        "correlation_id": "INC-000001",
        "state": state,
        "assigned_to": "",
        "assignment_group": "",
        "updated_by": by,
        "changed": list(changed),
        "comment": "",
        **more,
    }


async def test_changes_made_in_servicenow_come_back_once_with_the_person_and_are_not_echoed(
    engines: Engines, clock: Clock, snow: FakeServiceNow, tmp_path: Path
) -> None:
    async with mirrored(engines, snow, tmp_path, clock) as (s, url):
        assert (await ts.post(url, business_rule(1, state="2", changed=["state"]), token="wrong"))[0] == 401
        assert (await ts.ticket(engines)).status == "open"
        ack = business_rule(2, state="2", changed=["state"])
        assert await ts.post(url, ack) == (200, {"applied": True, "ticket": "INC-000001"})
        assert await ts.post(url, ack) == (200, {"applied": False, "ticket": "INC-000001"})  # redelivered
        assigned = business_rule(3, state="2", changed=["assigned_to", "assignment_group"], assigned_to="raj.patel")
        assert (await ts.post(url, {**assigned, "assignment_group": "Database"}))[0] == 200
        noted = business_rule(4, state="2", changed=["work_notes"], comment="binlogs purged, 41 % free")
        assert (await ts.post(url, noted))[0] == 200
        echo = business_rule(5, by=snow.user, state="6", changed=["state"])  # alertdesk's own update coming back
        assert (await ts.post(url, echo))[1]["applied"] is False
        assert (await ts.ticket(engines)).status == "in_progress"
        assert (await ts.post(url, business_rule(6, state="6", changed=["state"])))[0] == 200
        assert await s.drain() == 0  # nothing of it goes back to ServiceNow

    state, entries = await ts.taken_back(engines)
    assert state == ("resolved", "jane.doe", "raj.patel", "Database")  # status, acknowledged by, assignee, group
    assert entries == [
        ("acknowledged", "jane.doe", ""),
        ("assigned", "jane.doe", "group=Database assignee=raj.patel"),
        ("comment", "jane.doe", "binlogs purged, 41 % free"),
        ("resolved", "jane.doe", "resolved in snow"),
    ]
    assert [r.event for r in await ts.tracker_rows(engines)] == ["opened"]
    assert snow.incidents[0].work_notes == []
