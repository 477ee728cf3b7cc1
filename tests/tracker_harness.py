"""One harness for the three trackers' tests: a running fake, the policy binding critical and warning tickets to
it (credentials in files, as deployed), and what each tracker says where the tests assert it (its paths, its
error messages, its record's key).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dedup.fold import fold
from tests.conftest import Clock
from tests.fake_jira import FakeJira
from tests.fake_servicenow import FakeServiceNow
from tests.fake_tracker import FakeTracker
from tests.fake_zendesk import FakeZendesk
from tests.process import free_port
from tests.tracker_side import INBOUND_TOKEN, Side, inbound_api, problem, side
from ticketstore.db import Engines
from ticketstore.policy import Policy

F = TypeVar("F", bound=FakeTracker)
RUNBOOK_TEMPLATE = "https://wiki.example.net/runbooks/{source}/{host}/{service}"


@contextlib.asynccontextmanager
async def serving(fake: F) -> AsyncIterator[F]:
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def fake_fixture(makers: Mapping[str, Callable[[int], FakeTracker]]) -> Any:
    """A fixture running a fake on a free port around each test, once per maker (the test ids name them)."""

    @pytest.fixture(params=list(makers))
    async def running(request: pytest.FixtureRequest) -> AsyncIterator[FakeTracker]:
        async with serving(makers[request.param](free_port())) as server:
            yield server

    return running


@dataclass(frozen=True)
class Facts:
    """What a tracker answers, as the tests expect to read it in the ticket's history."""

    name: str  # the tracker's name in the policy
    title: str  # how the history names its record
    key: str  # the first record's key
    search: str  # the call looked up before every create
    create: str
    too_many: str  # its 429 error message
    unavailable: str  # its 503 error message
    unauthenticated: str  # its 401 error message
    acknowledged: str  # the record's status once alertdesk's ticket is acknowledged
    required: str  # a field the tracker's inbound body must have
    number_at: list[str]  # where that body carries the alertdesk ticket number
    resolver: str  # who resolves it remotely in resolved_remotely(), as the ticket's history names them


def facts(fake: FakeTracker) -> Facts:
    if isinstance(fake, FakeServiceNow):
        incidents = "/api/now/table/incident"
        return Facts(
            "snow", "ServiceNow incident", "INC0010001", f"GET {incidents}", f"POST {incidents}",
            "Too many requests", "Service Unavailable", "User Not Authenticated", "2",
            "updated_by", ["correlation_id"], "jane.doe",
        )  # fmt: skip
    if isinstance(fake, FakeJira):
        api = f"/rest/api/{fake.version}"
        search = f"GET {api}/search/jql" if fake.version == 3 else f"GET {api}/search"
        return Facts(
            "jira", "Jira issue", "OPS-1", search, f"POST {api}/issue", "Rate limit exceeded", "Service unavailable",
            "You are not authenticated. Authentication required to perform this operation.", "In Progress",
            "webhookEvent", ["issue", "fields", "labels"], "Jane Doe",
        )  # fmt: skip
    assert isinstance(fake, FakeZendesk)
    tickets = "/api/v2/tickets.json"
    return Facts(
        "zd", "Zendesk ticket", "4711", f"GET {tickets}", f"POST {tickets}",
        "APIRateLimitExceeded - Try again later", "ServiceUnavailable - Try again later", "Couldn't authenticate you",
        "open", "updated_by", ["external_id"], "Jane Doe",
    )  # fmt: skip


def resolved_remotely(fake: FakeTracker, number: str = "INC-000001") -> dict[str, Any]:
    """The body the tracker sends when a person resolves the record of ticket `number` (deploy/trackers/)."""
    if isinstance(fake, FakeServiceNow):
        return {
            "sys_id": "9d385017c611228701d22104cc95c371",
            "sys_mod_count": 7,
            "number": "INC0010001",
            "correlation_id": number,
            "state": "6",
            "updated_by": "jane.doe",
            "changed": ["state"],
        }
    if isinstance(fake, FakeJira):
        done = {"name": "Done", "statusCategory": {"key": "done"}}
        return {
            "timestamp": 1773480000000,
            "webhookEvent": "jira:issue_updated",
            "user": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Jane Doe"},
            "issue": {
                "id": "10001",
                "key": "OPS-1",
                "fields": {"labels": ["alertdesk", f"alertdesk-{number}"], "status": done},
            },
            "changelog": {"id": "10900", "items": [{"field": "status", "fieldtype": "jira", "toString": "Done"}]},
        }
    assert isinstance(fake, FakeZendesk)
    return {
        "event": "update",
        "ticket_id": "4711",
        "external_id": number,
        "updated_at": "2026-03-14 03:25:00 +0000",
        "status": "solved",
        "updated_by": "jane.doe@example.com",
        "updated_by_name": "Jane Doe",
    }


def records(fake: FakeTracker) -> list[Any]:
    """The remote records the fake holds: incidents, issues or tickets."""
    if isinstance(fake, FakeServiceNow):
        return list(fake.incidents)
    if isinstance(fake, FakeJira):
        return list(fake.issues)
    assert isinstance(fake, FakeZendesk)
    return list(fake.tickets)


def remote_status(fake: FakeTracker) -> str:
    """The first record's status as the tracker shows it."""
    if isinstance(fake, FakeServiceNow):
        return str(fake.incidents[0].fields["state"])
    if isinstance(fake, FakeJira):
        return fake.issues[0].status
    assert isinstance(fake, FakeZendesk)
    return str(fake.tickets[0].fields["status"])


def rotate(fake: FakeTracker, secret: str) -> None:
    """The tracker's admin changes the credential alertdesk signs in with."""
    if isinstance(fake, FakeServiceNow):
        fake.password = secret
    else:
        assert isinstance(fake, FakeJira | FakeZendesk)
        fake.token = secret


def secret_file(fake: FakeTracker, tmp_path: Path) -> Path:
    return tmp_path / f"{facts(fake).name}.secret"


def tracker_entry(fake: FakeTracker, tmp_path: Path, *, timeout: float = 2.0) -> dict[str, Any]:
    """The policy's `trackers:` entry for the fake (a JSON-able dict), its credentials written to files."""
    name = facts(fake).name
    (tmp_path / f"{name}.inbound").write_text(INBOUND_TOKEN + "\n")
    files = {"inbound_token_file": str(tmp_path / f"{name}.inbound"), "timeout": timeout}
    entry: dict[str, Any]
    if isinstance(fake, FakeServiceNow):
        secret_file(fake, tmp_path).write_text(fake.password + "\n")
        entry = {"type": "servicenow", "user": fake.user, "password_file": str(secret_file(fake, tmp_path))}
    elif isinstance(fake, FakeJira):
        secret_file(fake, tmp_path).write_text(fake.token + "\n")
        entry = {
            "type": "jira",
            "flavour": "cloud" if fake.version == 3 else "datacenter",
            **({"user": fake.user} if fake.user else {}),
            "token_file": str(secret_file(fake, tmp_path)),
            "project": "OPS",
            "issue_type": "Incident",
            "priorities": {"P1": "Blocker"},
        }
    else:
        assert isinstance(fake, FakeZendesk)
        secret_file(fake, tmp_path).write_text(fake.token + "\n")
        entry = {"type": "zendesk", "user": fake.email, "token_file": str(secret_file(fake, tmp_path))}
    return {**entry, "url": fake.url, **files}


def policy_for(fake: FakeTracker, tmp_path: Path, *, timeout: float = 2.0) -> Policy:
    """Critical (P1, escalated after 15 minutes) and warning (P4) tickets go to this tracker, with a runbook."""
    name = facts(fake).name
    return Policy.model_validate(
        {
            "trackers": {name: tracker_entry(fake, tmp_path, timeout=timeout)},
            "severities": {
                "critical": {
                    "priority": "P1",
                    "respond_within": "15m",
                    "resolve_within": "4h",
                    "tracker": name,
                    "runbook": RUNBOOK_TEMPLATE,
                    "escalation": [{"after": "15m", "group": "oncall-l2"}],
                },
                "warning": {"priority": "P4", "tracker": name, "runbook": RUNBOOK_TEMPLATE},
            },
        }
    )


@contextlib.asynccontextmanager
async def mirrored(
    engines: Engines, fake: FakeTracker, tmp_path: Path, clock: Clock
) -> AsyncIterator[tuple[Side, str]]:
    """The store side with one critical ticket (INC-000001) mirrored to the tracker, and the URL of the real
    inbound endpoint where the tracker's events come back."""
    policy = policy_for(fake, tmp_path)
    async with side(engines, policy, clock) as s, inbound_api(s.store, policy) as api:
        await s.store.apply_batch(fold([problem(clock)]))
        await s.drain()
        assert len(records(fake)) == 1
        yield s, f"{api}/{facts(fake).name}/events"
