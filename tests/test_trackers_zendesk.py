"""Zendesk as the team sees it: one ticket per alertdesk ticket (found by `external_id`), its priority and status
following the alertdesk ticket, internal notes for the rest, and the triggers' webhooks taken back once — against a
local server speaking the Tickets API (tests/fake_zendesk.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dedup.fold import fold
from normalizers.schema import Severity
from tests import tracker_side as ts
from tests.conftest import Clock
from tests.fake_zendesk import FakeZendesk
from tests.tracker_harness import fake_fixture, mirrored, policy_for
from ticketstore import actions
from ticketstore.db import Engines
from ticketstore.escalation.scan import escalate_due

zendesk = fake_fixture({"zendesk": FakeZendesk})


async def test_one_zendesk_ticket_follows_the_alertdesk_ticket_to_solved(
    engines: Engines, clock: Clock, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    zendesk.queued = [(429, {"Retry-After": "30"})]
    zendesk.lose_create_answers = 1
    async with ts.side(engines, policy_for(zendesk, tmp_path), clock) as s:
        await s.store.apply_batch(fold([ts.problem(clock)]))
        await s.dispatcher.run_once()  # 429
        clock.advance(seconds=30)
        await s.dispatcher.run_once()  # created, answer lost
        clock.advance(seconds=20)
        await s.dispatcher.run_once()  # found by external_id
        await s.store.act(1, actions.acknowledge("maria.rossi"))
        await s.drain()
        assert zendesk.tickets[0].fields["status"] == "open"
        await s.store.act(1, actions.resolve("maria.rossi"))
        await s.drain()

    (remote,) = zendesk.tickets
    assert remote.fields["id"] == 4711
    assert remote.fields["subject"] == ts.TITLE
    assert remote.fields["external_id"] == "INC-000001"
    assert (remote.fields["priority"], remote.fields["type"], remote.fields["status"]) == (
        "urgent",
        "incident",
        "solved",
    )
    assert f"Runbook: {ts.RUNBOOK}" in remote.comments[0]["body"]
    assert all(c["public"] is False for c in remote.comments)
    assert [c["body"] for c in remote.comments[1:]] == [
        "[alertdesk] acknowledged by maria.rossi",
        "[alertdesk] resolved by maria.rossi: resolved by operator",
    ]
    assert (await ts.ticket(engines)).external_refs == {"zd": "4711"}
    failures = [d for _, _, d in await ts.history(engines, "tracker_failed")]
    assert len(failures) == 2 and "HTTP 429" in failures[0] and "retrying in 0:00:30" in failures[0]


async def test_escalation_and_sla_breach_are_internal_notes_and_a_keys_new_ticket_names_the_previous(
    engines: Engines, clock: Clock, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async with ts.side(engines, policy_for(zendesk, tmp_path), clock) as s:
        await s.store.apply_batch(fold([ts.problem(clock)]))
        await s.drain()
        clock.advance(minutes=16)
        await escalate_due(s.store)
        assert await s.drain() == 2  # the response SLA breach and the escalation step
        await ts.same_problem_again(s, clock)

    first, second = zendesk.tickets
    notes = [c["body"] for c in first.comments[1:]]
    assert notes[0].startswith("[alertdesk] sla breached: response: not acknowledged by 2026-03-14 03:15:00Z")
    assert notes[1] == "[alertdesk] escalated: level 1: unacknowledged after 0:15:00, assigned to oncall-l2"
    assert first.fields["status"] == "solved"
    assert (second.fields["external_id"], second.fields["status"]) == ("INC-000002", "new")
    assert "Follows Zendesk ticket #4711 (alertdesk INC-000001)" in second.comments[0]["body"].splitlines()
    assert (await ts.ticket(engines, 2)).external_refs == {"zd": "4712"}


async def test_a_raised_severity_raises_the_zendesk_priority_and_a_lowered_one_is_noted(
    engines: Engines, clock: Clock, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    warning = ts.problem(clock).model_copy(update={"severity": Severity.WARNING})
    async with ts.side(engines, policy_for(zendesk, tmp_path), clock) as s:
        await s.store.apply_batch(fold([warning]))
        await s.drain()
        (remote,) = zendesk.tickets
        assert remote.fields["priority"] == "low"  # P4
        await s.store.apply_batch(fold([ts.problem(clock)]))  # critical now: P1
        await s.drain()
        assert remote.fields["priority"] == "urgent"
        await s.store.apply_batch(fold([warning.model_copy(update={"id": "w2", "received_at": clock()})]))
        await s.drain()

    assert len(zendesk.tickets) == 1
    assert remote.fields["priority"] == "urgent"  # priority follows the peak severity; the drop is a note
    assert [c["body"] for c in remote.comments[1:]] == [
        "[alertdesk] severity raised by zabbix: warning → critical",
        "[alertdesk] severity lowered by zabbix: critical → warning",
    ]
    assert all(c["public"] is False for c in remote.comments)


def trigger(event: str, **fields: str) -> dict[str, Any]:
    """The body of deploy/trackers/zendesk.md's triggers, placeholders filled in."""
    return {
        "event": event,
        "ticket_id": "4711",
        "external_id": "INC-000001",
        "updated_at": "2026-03-14 03:20:11 +0000",
        "status": "open",
        "assignee": "",
        "group": "",
        "updated_by": "jane.doe@example.com",
        "updated_by_name": "Jane Doe",
        "comment": "",
        **fields,
    }


async def test_trigger_webhooks_come_back_once_and_alertdesks_own_are_not_echoed(
    engines: Engines, clock: Clock, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async with mirrored(engines, zendesk, tmp_path, clock) as (s, url):
        opened = trigger("update", assignee="Raj Patel", group="DBA")
        assert await ts.post(url, opened) == (200, {"applied": True, "ticket": "INC-000001"})
        assert (await ts.post(url, opened))[1]["applied"] is False
        ours = trigger("update", status="solved", updated_by=zendesk.email, updated_at="2026-03-14 03:21:00 +0000")
        assert (await ts.post(url, ours))[1]["applied"] is False
        note = trigger(
            "comment", comment="[alertdesk] acknowledged by Jane Doe", updated_at="2026-03-14 03:21:30 +0000"
        )
        assert (await ts.post(url, note))[1]["applied"] is False
        said = trigger("comment", comment="replica promoted", updated_at="2026-03-14 03:22:00 +0000")
        assert (await ts.post(url, said))[0] == 200
        solved = trigger(
            "update", status="solved", assignee="Raj Patel", group="DBA", updated_at="2026-03-14 03:25:00 +0000"
        )
        assert (await ts.post(url, solved))[0] == 200
        await s.drain()

    assert await ts.taken_back(engines) == (
        ("resolved", "Jane Doe", "Raj Patel", "DBA"),
        [
            ("assigned", "Jane Doe", "group=DBA assignee=Raj Patel"),
            ("acknowledged", "Jane Doe", ""),
            ("comment", "Jane Doe", "replica promoted"),
            ("resolved", "Jane Doe", "resolved in zd"),
        ],
    )
    assert [r.event for r in await ts.tracker_rows(engines, "zd")] == ["opened"]
    assert len(zendesk.tickets[0].comments) == 1
