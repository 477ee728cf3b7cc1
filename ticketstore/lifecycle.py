"""CONTRACT §2 as code: what each event does to its key's tickets.

`Lifecycle.apply` takes the key's state as the store loaded it and one ticket command, and changes tickets in
memory; the store writes the result in the same transaction. Pure, so every row of the contract's table is a
plain unit test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from normalizers.schema import Alert, Kind, Severity, Source, TicketCommand, UpdateAction, highest
from ticketstore.maintenance import NO_WINDOWS, Window, Windows, fields_of
from ticketstore.policy import Policy
from ticketstore.ticket import TicketRow


@dataclass(slots=True)
class KeyState:
    """What the store knows of one dedup_key at the start of a batch; the lifecycle keeps it current."""

    latest: TicketRow | None = None  # the key's newest ticket; when active it is THE active ticket
    episodes: dict[str, TicketRow] = field(default_factory=dict)  # episode id -> its ticket
    # each recent ticket's resolution, by ticket (its id, or a stand-in while new), as `tickets.resolved_at` holds
    # it: a ticket brought back and resolved again counts once, at its latest resolution (flapping)
    recent_resolutions: dict[int, datetime] = field(default_factory=dict)
    new_episodes: list[tuple[str, TicketRow]] = field(default_factory=list)  # links the store must write

    @property
    def active(self) -> TicketRow | None:
        return self.latest if self.latest is not None and self.latest.active else None

    def resolved(self, ticket: TicketRow, at: datetime) -> None:
        self.recent_resolutions[_slot(ticket)] = at

    def reopened(self, ticket: TicketRow) -> None:
        self.recent_resolutions.pop(_slot(ticket), None)


def _slot(ticket: TicketRow) -> int:
    """A ticket's key among the resolutions: its id, or (not inserted yet) a negative stand-in no id can equal."""
    return ticket.id if ticket.id is not None else -id(ticket)


@dataclass(slots=True)
class Outcome:
    """What one command did: the ticket it landed on (None: nothing to attach it to) and what happened."""

    ticket: TicketRow | None
    opened: bool = False
    resolved: bool = False
    silenced: bool = False  # a problem a maintenance window silenced


@dataclass(slots=True)
class Lifecycle:
    policy: Policy

    def apply(self, state: KeyState, cmd: TicketCommand, count: int, windows: Windows = NO_WINDOWS) -> Outcome:
        """Apply `cmd`; `count` is how many of its alerts are new (the others were applied before).

        `windows`: the maintenance windows known now; a problem one of them covers lands on a suppressed ticket.
        """
        a = cmd.alert
        at = a.received_at
        active = state.active
        if active is not None and active.flapping:
            if self.settle_flapping(active, at) and not active.active:
                state.resolved(active, at)  # flapping ended in OK: the ticket's resolution, as any other
            active = state.active
        known = state.episodes.get(a.episode_id) if a.episode_id else None
        if known is not None and not known.active and active is not known:
            detail = f"{_describe(a)} for episode {a.episode_id}: ticket not changed"
            # what an operator wrote with a late event (a Zabbix comment on a resolved problem) is kept
            known.log(at, "late_event", a.actor or a.source.value, f"{detail}: {a.comment}" if a.comment else detail)
            return Outcome(known)

        match a.kind:
            case Kind.PROBLEM:
                return self._problem(state, cmd, count, windows.matching(fields_of(a), at))
            case Kind.RECOVERY:
                if active is None:
                    return Outcome(None)
                if active.flapping:
                    active.record_state(at, ok=True)
                    active.log(at, "recovery", a.source.value, "recovered while flapping: kept open")
                    return Outcome(active)
                return self._resolve(state, active, at, a.source.value, a.title or "recovered")
            case Kind.ACKNOWLEDGE:
                if active is not None:
                    active.acknowledge(at, a.actor or a.source.value, a.comment)
                return Outcome(active)
            case Kind.COMMENT:
                target = active or known
                if target is not None:
                    target.log(at, "comment", a.actor or a.source.value, a.comment or a.title)
                return Outcome(target)
            case Kind.UPDATE:
                return self._update(state, active or known, a)
            case Kind.FLAPPING_START | Kind.FLAPPING_STOP:
                if active is None:
                    return Outcome(None)
                starting = a.kind is Kind.FLAPPING_START
                active.set_flapping(at, starting, a.source.value, "reported by the source")
                if not starting and a.state_ok:
                    return self._resolve(state, active, at, a.source.value, "flapping stopped in OK state")
                return Outcome(active)
            case Kind.DOWNTIME_START | Kind.DOWNTIME_END:
                if active is not None:
                    on = a.kind is Kind.DOWNTIME_START
                    detail = a.comment or ("downtime" if on else "downtime end")
                    active.suppress(at, on, a.actor or a.source.value, detail, self.policy)
                return Outcome(active)
        raise AssertionError(a.kind)

    def settle_flapping(self, ticket: TicketRow, now: datetime) -> bool:
        """After a quiet period the flapping flag clears and the last state applies. True if it changed."""
        quiet = self.policy.flapping_for(ticket.source, ticket.peak_severity, ticket.instance).quiet
        if not ticket.flapping or ticket.last_state_change is None or now - ticket.last_state_change < quiet:
            return False
        ticket.set_flapping(now, False, None, f"no state change for {quiet}")
        if ticket.last_state_ok:
            ticket.resolve(now, None, "flapping ended in OK state", self.policy)
        return True

    # --- rules --------------------------------------------------------------------------------------------

    def _problem(self, state: KeyState, cmd: TicketCommand, count: int, silencer: Window | None) -> Outcome:
        a = cmd.alert
        at = a.received_at
        active = state.active
        if active is not None and _supersedes(a, active):
            self._resolve(
                state,
                active,
                at,
                a.source.value,
                f"superseded: problem {a.episode_id} follows an unnotified recovery of problem {active.episode_id}",
            )
            active = None
        if active is None and self._within_reopen_window(state, a):
            assert state.latest is not None
            active = state.latest
            active.reopen(at, None, "a new problem within the reopen window")
            state.reopened(active)
        if active is None and self._is_flapping(state, a):
            assert state.latest is not None
            active = state.latest
            window = self.policy.flapping_for(a.source.value, active.peak_severity, a.instance).window
            active.reopen(at, None, f"{len(state.recent_resolutions)} open/resolve cycles within {window}")
            state.reopened(active)
            active.set_flapping(at, True, None, "detected by alertdesk: recoveries are recorded without resolving")
        if active is not None and active.next_escalation_at is None and not active.acknowledged_by:
            active.next_escalation_at = active.step_due(self.policy)  # brought back: the steps run again
        if active is None:
            return Outcome(self._open(state, cmd, count, silencer), opened=True, silenced=silencer is not None)
        if silencer is not None:
            active.enter_maintenance(at, silencer.id, silencer.describe())

        active.occurrences += count
        active.last_seen = max(active.last_seen, at)
        was_ok = active.last_state_ok
        active.record_state(at, ok=False)
        if cmd.peak_severity is not None and cmd.peak_severity is not a.severity:
            active.change_severity(at, cmd.peak_severity, self.policy, a.source.value)  # a folded run peaked higher
        if a.severity is not None:
            active.change_severity(at, a.severity, self.policy, a.source.value)
        self._follow_episode(state, active, a)
        if active.flapping and was_ok:  # a state change is recorded; repeats only count, as on any ticket
            active.log(at, "problem", a.source.value, "problem while flapping")
        return Outcome(active, silenced=silencer is not None)

    def _open(self, state: KeyState, cmd: TicketCommand, count: int, silencer: Window | None) -> TicketRow:
        a = cmd.alert
        severity = a.severity or Severity.WARNING
        peak = highest(severity, cmd.peak_severity) or severity
        rule = self.policy.for_severity(peak)
        opened = cmd.first_received_at
        ticket = TicketRow(
            dedup_key=a.dedup_key,
            source=a.source.value,
            instance=a.instance,
            title=a.title,
            description=a.description,
            host=a.host,
            host_display=a.host_display,
            service=a.service,
            address=a.address,
            contact=a.contact,
            severity=severity.value,
            peak_severity=peak.value,
            priority=rule.priority,
            status="open",
            occurrences=count,
            first_seen=opened,
            last_seen=a.received_at,
            assigned_group=self.policy.route(a) or self.policy.default_group,
            respond_by=self.policy.deadline(peak, opened, rule.respond_within),
            resolve_by=self.policy.deadline(peak, opened, rule.resolve_within),
            last_state_ok=False,
            last_state_change=opened,
            tags=dict(a.tags),
            runbook_url=self.policy.runbook_url(a, peak),
            tracker=self.policy.tracker_for(a, peak),
        )
        previous = state.latest
        if previous is not None:
            ticket.previous_ticket_id = previous.id
            ticket.previous = previous if previous.id is None else None
        self._follow_episode(state, ticket, a)
        ticket.next_escalation_at = ticket.step_due(self.policy)
        ticket.log(a.received_at, "opened", a.source.value, f"{peak.value} {rule.priority}: {a.title}")
        if silencer is not None:
            ticket.enter_maintenance(opened, silencer.id, silencer.describe())
        ticket.notify("opened")
        state.latest = ticket
        return ticket

    def _update(self, state: KeyState, target: TicketRow | None, a: Alert) -> Outcome:
        if target is None:
            return Outcome(None)
        at, by = a.received_at, a.actor or a.source.value
        resolved = False
        for action in a.actions or ():
            match action:
                case UpdateAction.ACKNOWLEDGED:
                    target.acknowledge(at, by, a.comment)
                case UpdateAction.UNACKNOWLEDGED:
                    target.unacknowledge(at, by, self.policy)
                case UpdateAction.COMMENTED:
                    target.log(at, "comment", by, a.comment or "")
                case UpdateAction.SEVERITY_CHANGED if a.severity is not None:
                    target.change_severity(at, a.severity, self.policy, by, f"changed severity to {a.severity.value}")
                case UpdateAction.CLOSED:
                    self._resolve(state, target, at, by, "closed in Zabbix")
                    resolved = True
                case UpdateAction.SUPPRESSED | UpdateAction.UNSUPPRESSED:
                    target.suppress(at, action is UpdateAction.SUPPRESSED, by, a.comment or "", self.policy)
                case _:
                    target.log(at, "update", by, action.value)
        if not a.actions:
            target.log(at, "update", by, a.comment or "")
        return Outcome(target, resolved=resolved)

    def _resolve(self, state: KeyState, ticket: TicketRow, at: datetime, by: str | None, detail: str) -> Outcome:
        if ticket.active:
            ticket.resolve(at, by, detail, self.policy)
            state.resolved(ticket, at)
        return Outcome(ticket, resolved=True)

    def _within_reopen_window(self, state: KeyState, a: Alert) -> bool:
        """Reopening is off by default (window 0): a new problem after a resolve opens a new ticket."""
        latest = state.latest
        if latest is None or latest.status != "resolved" or latest.resolved_at is None:
            return False
        window = self.policy.reopen_window(a.source.value, latest.peak_severity, a.instance)
        return bool(window) and a.received_at - latest.resolved_at <= window

    def _is_flapping(self, state: KeyState, a: Alert) -> bool:
        latest = state.latest
        if latest is None or latest.status != "resolved":
            return False
        at = a.received_at
        rule = self.policy.flapping_for(a.source.value, latest.peak_severity, a.instance)
        for slot, resolved_at in list(state.recent_resolutions.items()):
            if at - resolved_at > rule.window:
                del state.recent_resolutions[slot]
        return len(state.recent_resolutions) >= rule.cycles

    def _follow_episode(self, state: KeyState, ticket: TicketRow, a: Alert) -> None:
        if a.episode_id is not None:
            ticket.episode_id = a.episode_id
            if a.episode_id not in state.episodes:
                state.episodes[a.episode_id] = ticket
                state.new_episodes.append((a.episode_id, ticket))
        ticket.source_refs.update(a.source_refs)


def _supersedes(a: Alert, active: TicketRow) -> bool:
    """Nagios: a problem id different from the active ticket's means its recovery was never notified."""
    return (
        a.source is Source.NAGIOS
        and a.episode_id is not None
        and active.episode_id is not None
        and a.episode_id != active.episode_id
        and not active.flapping
    )


def _describe(a: Alert) -> str:
    if a.kind is Kind.UPDATE and a.actions:
        return "update (" + ", ".join(x.value for x in a.actions) + ")"
    return a.kind.value
