"""Jira as the team sees it: one issue per ticket (Cloud REST v3 with ADF, Data Center REST v2 with a PAT), its
priority, status and comments following the ticket, and `jira:issue_updated` webhooks taken back once — against a
local server speaking Jira's REST API (tests/fake_jira.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dedup.fold import fold
from normalizers.schema import Severity
from tests import tracker_side as ts
from tests.conftest import Clock
from tests.fake_jira import FakeJira
from tests.tracker_harness import fake_fixture, mirrored, policy_for
from ticketstore import actions
from ticketstore.db import Engines
from ticketstore.escalation.scan import escalate_due

jira = fake_fixture(
    {"cloud": FakeJira, "datacenter": lambda port: FakeJira(port, version=2, user=None)}  # REST v2, a PAT as Bearer
)


def text(jira: FakeJira, body: Any) -> str:
    """A description or comment as a person reads it: v2 text, or the text of v3's ADF paragraphs."""
    if jira.version == 2:
        assert isinstance(body, str)
        return body
    assert body["type"] == "doc" and body["version"] == 1
    return "\n\n".join(node["content"][0]["text"] for node in body["content"])


async def test_one_issue_follows_the_ticket_from_open_to_done(
    engines: Engines, clock: Clock, jira: FakeJira, tmp_path: Path
) -> None:
    async with ts.side(engines, policy_for(jira, tmp_path), clock) as s:
        warning = ts.problem(clock).model_copy(update={"severity": Severity.WARNING})
        await s.store.apply_batch(fold([warning]))
        assert await s.drain() == 1
        (issue,) = jira.issues
        assert issue.key == "OPS-1"
        assert issue.fields["summary"] == ts.TITLE
        assert issue.fields["labels"] == ["alertdesk", "alertdesk-INC-000001"]
        assert issue.fields["issuetype"] == {"name": "Incident"}
        assert issue.fields["priority"] == {"name": "Low"}  # P4, the default names
        assert f"Runbook: {ts.RUNBOOK}" in text(jira, issue.fields["description"])
        assert (await ts.ticket(engines)).external_refs == {"jira": "OPS-1"}

        await s.store.apply_batch(fold([ts.problem(clock)]))  # critical now: P1, named Blocker in this policy
        clock.advance(minutes=16)
        await escalate_due(s.store)
        await s.store.act(1, actions.acknowledge("maria.rossi"))
        await s.drain()
        assert issue.fields["priority"] == {"name": "Blocker"}
        assert issue.status == "In Progress"
        await s.store.act(1, actions.resolve("maria.rossi"))
        await s.drain()

    assert len(jira.issues) == 1
    assert issue.status == "Done"
    comments = [text(jira, c) for c in issue.comments]
    assert comments[0] == "[alertdesk] severity raised by zabbix: warning → critical"
    assert "[alertdesk] escalated: level 1: unacknowledged after 0:15:00, assigned to oncall-l2" in comments
    assert comments[-2:] == [
        "[alertdesk] acknowledged by maria.rossi",
        "[alertdesk] resolved by maria.rossi: resolved by operator",
    ]
    assert await ts.history(engines, "tracker") == [("tracker", None, "Jira issue OPS-1 created")]


async def test_a_lost_create_answer_finds_the_issue_by_its_label_and_a_new_ticket_links_it(
    engines: Engines, clock: Clock, jira: FakeJira, tmp_path: Path
) -> None:
    jira.lose_create_answers = 1
    async with ts.side(engines, policy_for(jira, tmp_path), clock) as s:
        await s.store.apply_batch(fold([ts.problem(clock)]))
        await s.dispatcher.run_once()
        clock.advance(seconds=10)
        await s.dispatcher.run_once()
        await ts.same_problem_again(s, clock)

    assert [i.key for i in jira.issues] == ["OPS-1", "OPS-2"]
    assert jira.issues[1].links == ["Relates OPS-1"]
    assert (await ts.ticket(engines)).external_refs == {"jira": "OPS-1"}


def issue_updated(
    jira: FakeJira, *, change: str, by: dict[str, str], category: str = "new", body: Any = None
) -> dict[str, Any]:
    """Jira's `jira:issue_updated` webhook body for issue OPS-1."""
    status = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
    name = next(n for n, c in status.items() if c == category)
    event: dict[str, Any] = {
        "timestamp": 1773480000000,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": by,
        "issue": {
            "id": "10001",
            "key": "OPS-1",
            "fields": {
                "labels": ["alertdesk", "alertdesk-INC-000001"],
                "status": {"name": name, "statusCategory": {"key": category}},
            },
        },
    }
    if change == "comment":
        event["issue_event_type_name"] = "issue_commented"
        event["comment"] = {"id": "10500", "body": body, "author": by}
    else:
        item = {"field": change, "fieldtype": "jira", "toString": name if change == "status" else "Raj Patel"}
        event["changelog"] = {"id": f"1{len(change)}0{category[:1]}", "items": [item]}
    return event


async def test_issue_updated_webhooks_come_back_once_and_alertdesks_own_are_not_echoed(
    engines: Engines, clock: Clock, jira: FakeJira, tmp_path: Path
) -> None:
    jane = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "name": "jdoe", "displayName": "Jane Doe"}
    ours = {"accountId": "557058:f58131cb", "emailAddress": "ops@example.com", "displayName": "alertdesk"}

    def adf(words: str) -> Any:
        paragraph = {"type": "paragraph", "content": [{"type": "text", "text": words}]}
        return {"type": "doc", "version": 1, "content": [paragraph]} if jira.version == 3 else words

    async with mirrored(engines, jira, tmp_path, clock) as (s, url):
        started = issue_updated(jira, change="status", by=jane, category="indeterminate")
        assert await ts.post(url, started) == (200, {"applied": True, "ticket": "INC-000001"})
        assert (await ts.post(url, started))[1]["applied"] is False  # redelivered
        assert (await ts.post(url, issue_updated(jira, change="assignee", by=jane)))[0] == 200
        echo = issue_updated(jira, change="comment", by=jane, body=adf("[alertdesk] acknowledged by maria.rossi"))
        assert (await ts.post(url, echo))[1]["applied"] is False
        if jira.user is not None:
            ours_done = issue_updated(jira, change="status", by=ours, category="done")
            assert (await ts.post(url, ours_done))[1]["applied"] is False
        said = issue_updated(jira, change="comment", by=jane, body=adf("failover to db-paris-02 done"))
        assert (await ts.post(url, said))[0] == 200
        assert (await ts.post(url, issue_updated(jira, change="status", by=jane, category="done")))[0] == 200
        await s.drain()

    (status, acknowledged_by, assignee, group), entries = await ts.taken_back(engines)
    assert (status, acknowledged_by, assignee) == ("resolved", "Jane Doe", "Raj Patel")
    assert entries == [
        ("acknowledged", "Jane Doe", ""),
        ("assigned", "Jane Doe", f"group={group} assignee=Raj Patel"),
        ("comment", "Jane Doe", "failover to db-paris-02 done"),
        ("resolved", "Jane Doe", "resolved in jira"),
    ]
    assert [r.event for r in await ts.tracker_rows(engines, "jira")] == ["opened"]
    assert jira.issues[0].comments == []
