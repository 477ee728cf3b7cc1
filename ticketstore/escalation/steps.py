"""Escalation by severity: SLA breaches and escalation steps, fired from deadlines stored on the ticket.

The store's scanner claims due tickets (row lock, `SKIP LOCKED` on PostgreSQL) and calls `review` on each in the
same transaction, so a step fires once with several workers and after restarts, and an acknowledgement committed
first wins: `review` looks at the ticket as locked, not as it was when the scanner chose it.
"""

from __future__ import annotations

from datetime import datetime

from normalizers.schema import Severity
from ticketstore.policy import EscalationStep, Policy
from ticketstore.ticket import TicketRow


def review(ticket: TicketRow, policy: Policy, now: datetime) -> bool:
    """Mark breached SLAs and fire due escalation steps. True if anything changed."""
    if not ticket.active or ticket.paused_since is not None:
        return False
    changed = False
    severity = Severity(ticket.peak_severity)
    if not ticket.acknowledged_by and not ticket.response_breached and _due(ticket.respond_by, now):
        ticket.response_breached = True
        ticket.log(now, "sla_breached", None, f"response: not acknowledged by {ticket.respond_by:%Y-%m-%d %H:%M:%S}Z")
        ticket.notify("sla_breached", "response")
        changed = True
    if not ticket.resolution_breached and _due(ticket.resolve_by, now):
        ticket.resolution_breached = True
        ticket.log(now, "sla_breached", None, f"resolution: not resolved by {ticket.resolve_by:%Y-%m-%d %H:%M:%S}Z")
        ticket.notify("sla_breached", "resolution")
        changed = True
    steps = policy.for_severity(severity).escalation
    fired_due = ticket.next_escalation_at
    if not ticket.acknowledged_by and fired_due is not None and fired_due <= now:
        changed = True
        if ticket.escalation_level >= len(steps):  # the policy changed under it: nothing left to fire
            ticket.next_escalation_at = None
            return changed
        step = steps[ticket.escalation_level]
        ticket.escalation_level += 1
        if step.group:
            ticket.assigned_group = step.group
        ticket.log(
            now,
            "escalated",
            None,
            f"level {ticket.escalation_level}: unacknowledged after {step.after}"
            + (f", assigned to {step.group}" if step.group else ""),
        )
        ticket.notify("escalated", str(ticket.escalation_level))
        ticket.next_escalation_at = _following(policy, severity, steps, ticket.escalation_level, fired_due)
    return changed


def _following(
    policy: Policy, severity: Severity, steps: tuple[EscalationStep, ...], level: int, fired_due: datetime
) -> datetime | None:
    """The next step keeps its gap to the step that just fired (due at `fired_due`).

    Counting from the fired step's deadline rather than from opening keeps the steps after a severity rise counted
    from the rise, and keeps paused time out, since both already moved that deadline.
    """
    if level >= len(steps):
        return None
    return policy.deadline(severity, fired_due, steps[level].after - steps[level - 1].after)


def _due(deadline: datetime | None, now: datetime) -> bool:
    return deadline is not None and deadline <= now
