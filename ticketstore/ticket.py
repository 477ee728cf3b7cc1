"""A ticket's state and every way it changes. This is where a ticket changes state.

`TicketRow` is the store's working copy of one row. Each transition method changes it and appends what it did to
`history`, so the store can write the ticket and its history in the same transaction. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from normalizers.schema import Severity, highest
from ticketstore.policy import Policy
from ticketstore.tables import ACTIVE_STATUSES

ACTIVE = frozenset(ACTIVE_STATUSES)
STATUSES = ("open", "in_progress", "waiting", "resolved", "closed")


@dataclass(slots=True)
class HistoryEntry:
    ticket: TicketRow
    at: datetime
    kind: str
    actor: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Notice:
    """An event to notify (CONTRACT §3); `tag` makes its idempotency key unique per (ticket, step)."""

    event: str  # opened, escalated, severity_raised, sla_breached, resolved
    level: int
    tag: str


@dataclass(slots=True, eq=False)
class TicketRow:
    dedup_key: str
    source: str
    title: str
    host: str
    severity: str
    peak_severity: str
    priority: str
    status: str
    first_seen: datetime
    last_seen: datetime
    id: int | None = None
    instance: str | None = None
    description: str = ""
    host_display: str | None = None
    service: str | None = None
    address: str | None = None
    contact: str | None = None
    suppressed: bool = False  # downtime or a maintenance window: clocks paused
    downtime: bool = False  # the source's own downtime
    maintenance_window_id: int | None = None  # the maintenance window silencing it
    held_opened: bool = False  # opened in a window: `opened` goes out when the window is over
    flapping: bool = False
    occurrences: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    assigned_group: str | None = None
    assignee: str | None = None
    escalation_level: int = 0
    next_escalation_at: datetime | None = None
    respond_by: datetime | None = None
    resolve_by: datetime | None = None
    response_breached: bool = False
    resolution_breached: bool = False
    paused_since: datetime | None = None
    paused_seconds: float = 0.0
    previous_ticket_id: int | None = None
    episode_id: str | None = None
    last_state_ok: bool | None = None
    last_state_change: datetime | None = None
    source_refs: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    runbook_url: str | None = None
    tracker: str | None = None  # the policy's tracker that mirrors this ticket, chosen on open
    external_refs: dict[str, str] = field(default_factory=dict)  # tracker name → remote key (INC0012345, OPS-7)
    # not columns: the journal of this unit of work (history, notifications to send), and the new ticket this
    # one follows (its id is not known yet)
    history: list[HistoryEntry] = field(default_factory=list, repr=False)
    notices: list[Notice] = field(default_factory=list, repr=False)
    previous: TicketRow | None = field(default=None, repr=False)
    origin: str | None = field(default=None, repr=False)  # the tracker this change came from: not sent back to it

    @classmethod
    def from_row(cls, row: Any) -> TicketRow:
        mapping = row._mapping
        return cls(**{name: mapping[name] for name in COLUMNS})

    def values(self) -> dict[str, Any]:
        """Column values, for INSERT/UPDATE."""
        out = dict(zip(COLUMNS, self.snapshot(), strict=True))
        if self.previous is not None:
            out["previous_ticket_id"] = self.previous.id
        return out

    def snapshot(self) -> tuple[Any, ...]:
        """The column values in `COLUMNS` order: cheap to take before a change, for `rows.changes` to compare."""
        return _snapshot(self)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def log(self, at: datetime, kind: str, actor: str | None, detail: str = "") -> None:
        self.history.append(HistoryEntry(self, at, kind, actor, detail))

    def notify(self, event: str, tag: str = "") -> None:
        """Queue a notification; in a maintenance window none goes out (`opened` is held for the window's end)."""
        if self.maintenance_window_id is not None:
            self.held_opened = self.held_opened or event == "opened"
            return
        self.notices.append(Notice(event, self.escalation_level, tag or event))

    # --- transitions ------------------------------------------------------------------------------------

    def acknowledge(self, at: datetime, by: str, comment: str | None = None) -> None:
        if self.status == "open" or self.acknowledged_by != by:
            if self.status == "open":
                self.status = "in_progress"
            self.acknowledged_by = by
            self.acknowledged_at = self.acknowledged_at or at
            self.next_escalation_at = None  # acknowledgement stops the escalation steps
            self.log(at, "acknowledged", by, comment or "")

    def unacknowledge(self, at: datetime, by: str | None, policy: Policy) -> None:
        """Back to open: the escalation steps resume where they were (an overdue step fires at the next scan)."""
        if self.status == "in_progress":
            self.status = "open"
        self.acknowledged_by = None
        self.acknowledged_at = None
        self.next_escalation_at = self.step_due(policy)
        self.log(at, "unacknowledged", by)

    def resolve(self, at: datetime, by: str | None, detail: str, policy: Policy) -> None:
        self._unpause(at, policy)
        self.maintenance_window_id = None
        if self.held_opened:  # nobody was told it opened: nobody is told it resolved
            self.held_opened = False
        elif not self.flapping:  # while flapping, open/resolve notifications are held
            self.notify("resolved", at.isoformat())
        self.status = "resolved"
        self.resolved_at = at
        self.record_state(at, ok=True)
        self.flapping = False
        self.next_escalation_at = None
        self.suppressed = self.downtime = False  # the downtime's end will find no active ticket to clear it
        self.log(at, "resolved", by, detail)

    def close(self, at: datetime, by: str | None, policy: Policy) -> None:
        if self.active:
            self.resolve(at, by, "closed by operator", policy)
        self.status = "closed"
        self.closed_at = at
        self.log(at, "closed", by)

    def reopen(self, at: datetime, by: str | None, detail: str) -> None:
        self.status = "in_progress" if self.acknowledged_by else "open"  # an acknowledgement stays met
        self.resolved_at = None
        self.closed_at = None
        self.log(at, "reopened", by, detail)

    def set_waiting(self, at: datetime, waiting: bool, by: str | None, policy: Policy) -> None:
        if waiting:
            self.status = "waiting"
            self._pause(at)
        else:
            self.status = "in_progress" if self.acknowledged_by else "open"
            if not self.suppressed:
                self._unpause(at, policy)
        self.log(at, "status", by, self.status)

    def suppress(self, at: datetime, on: bool, by: str | None, detail: str, policy: Policy) -> None:
        """The source's own downtime; a maintenance window keeps the ticket suppressed after it ends."""
        if self.downtime == on:
            return
        self.downtime = on
        if not on and self.maintenance_window_id is not None:
            self.log(at, "downtime_ended", by, f"{detail}; still in maintenance window {self.maintenance_window_id}")
            return
        self._set_suppressed(at, on, policy)
        self.log(at, "suppressed" if on else "unsuppressed", by, detail)

    def enter_maintenance(self, at: datetime, window_id: int, detail: str) -> None:
        """Silenced by a window: clocks paused, and what this unit of work meant to notify is held or dropped."""
        if self.maintenance_window_id is not None:
            return
        self.maintenance_window_id = window_id
        self.held_opened = self.held_opened or any(n.event == "opened" for n in self.notices)
        self.notices.clear()
        if not self.suppressed:
            self._set_suppressed(at, True, None)
        self.log(at, "suppressed", "maintenance", detail)

    def leave_maintenance(self, at: datetime, detail: str, policy: Policy) -> None:
        """The window is over: clocks resume (unless the source's downtime goes on), a held `opened` goes out."""
        if self.maintenance_window_id is None:
            return
        self.maintenance_window_id = None
        if not self.downtime:
            self._set_suppressed(at, False, policy)
        if self.downtime:
            self.log(at, "maintenance_ended", "maintenance", f"{detail}; downtime goes on")
        else:
            self.log(at, "unsuppressed", "maintenance", detail)
        if self.held_opened:
            self.held_opened = False
            self.notify("opened")

    def _set_suppressed(self, at: datetime, on: bool, policy: Policy | None) -> None:
        self.suppressed = on
        if on:
            self._pause(at)
        elif self.status != "waiting" and policy is not None:
            self._unpause(at, policy)

    def set_flapping(self, at: datetime, on: bool, by: str | None, detail: str) -> None:
        if self.flapping != on:
            self.flapping = on
            self.log(at, "flapping_started" if on else "flapping_stopped", by, detail)

    def record_state(self, at: datetime, ok: bool) -> None:
        if self.last_state_ok != ok:
            self.last_state_change = at
        self.last_state_ok = ok

    def change_severity(
        self, at: datetime, severity: Severity, policy: Policy, by: str | None, detail: str = ""
    ) -> bool:
        """Follow the latest problem's severity; priority and deadlines follow the peak. True if the peak rose."""
        old = Severity(self.severity)
        if severity is not old:
            self.severity = severity.value
            kind = "severity_raised" if severity.rank > old.rank else "severity_lowered"
            self.log(at, kind, by, detail or f"{old.value} → {severity.value}")
        peak = highest(Severity(self.peak_severity), severity)
        assert peak is not None
        if peak.value == self.peak_severity:
            return False
        self.peak_severity = peak.value
        rule = policy.for_severity(peak)
        self.priority = rule.priority
        if not self.acknowledged_by:
            self.respond_by = _earliest(self.respond_by, policy.deadline(peak, at, rule.respond_within))
            if self.escalation_level < len(rule.escalation):
                step = policy.deadline(peak, at, rule.escalation[self.escalation_level].after)
                self.next_escalation_at = _earliest(self.next_escalation_at, step)
        self.resolve_by = _earliest(self.resolve_by, policy.deadline(peak, at, rule.resolve_within))
        if not self.flapping:
            self.notify("severity_raised", peak.value)
        return True

    def step_due(self, policy: Policy) -> datetime | None:
        """When the next escalation step is due, counted from opening (paused time does not count)."""
        peak = Severity(self.peak_severity)
        steps = policy.for_severity(peak).escalation
        if self.escalation_level >= len(steps):
            return None
        after = steps[self.escalation_level].after + timedelta(seconds=self.paused_seconds)
        return policy.deadline(peak, self.first_seen, after)

    def _pause(self, at: datetime) -> None:
        if self.paused_since is None:
            self.paused_since = at

    def _unpause(self, at: datetime, policy: Policy) -> None:
        """Paused time does not count: push the deadlines back by it, counted on the ticket's own clock.

        For a severity with business hours that is the business time paused: a weekend spent waiting costs a
        Monday deadline nothing, where pushing it by the wall-clock time would add two days of business hours.
        `paused_seconds` adds up on the same clock, so the escalation steps (`step_due`) agree with the deadlines.
        """
        if self.paused_since is None:
            return
        peak = Severity(self.peak_severity)
        paused = policy.elapsed(peak, self.paused_since, at)
        self.paused_since = None
        if not paused:
            return  # also: business arithmetic would move a deadline at closing time to the next opening
        self.paused_seconds += paused.total_seconds()
        if self.respond_by is not None and not self.acknowledged_by:
            self.respond_by = policy.deadline(peak, self.respond_by, paused)
        if self.resolve_by is not None:
            self.resolve_by = policy.deadline(peak, self.resolve_by, paused)
        if self.next_escalation_at is not None:
            self.next_escalation_at = policy.deadline(peak, self.next_escalation_at, paused)


COLUMNS = tuple(
    f.name for f in dataclasses.fields(TicketRow) if f.name not in {"history", "notices", "previous", "origin"}
)
_snapshot = operator.attrgetter(*COLUMNS)


def ticket_number(ticket_id: int) -> str:
    return f"INC-{ticket_id:06d}"


def _earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate < current else current
