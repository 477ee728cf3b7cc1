"""Operator actions from the ticket API: which are allowed in which status, and what each changes.

Each action is a pure function on a `TicketRow`; `TicketStore.act` runs it on the row locked for update, so an
operator and the store worker never overwrite each other's change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from normalizers.schema import AlertdeskError
from ticketstore.policy import Policy
from ticketstore.ticket import ACTIVE, STATUSES, TicketRow

Action = Callable[[TicketRow, datetime, Policy], None]


class TicketNotFound(AlertdeskError):
    """No ticket with that id: 404."""


class Conflict(AlertdeskError):
    """The action does not apply to the ticket as it is now (e.g. acknowledging a closed ticket): 409."""


def acknowledge(by: str) -> Action:
    def run(ticket: TicketRow, at: datetime, policy: Policy) -> None:
        _require_active(ticket, "acknowledge")
        ticket.acknowledge(at, by)

    return run


def assign(by: str, group: str | None, assignee: str | None) -> Action:
    def run(ticket: TicketRow, at: datetime, policy: Policy) -> None:
        if ticket.status == "closed":
            raise Conflict("a closed ticket cannot be reassigned")
        ticket.assigned_group = group if group is not None else ticket.assigned_group
        ticket.assignee = assignee
        ticket.log(at, "assigned", by, f"group={ticket.assigned_group} assignee={assignee or '-'}")

    return run


def comment(by: str, text: str) -> Action:
    def run(ticket: TicketRow, at: datetime, policy: Policy) -> None:
        ticket.log(at, "comment", by, text)

    return run


def resolve(by: str) -> Action:
    def run(ticket: TicketRow, at: datetime, policy: Policy) -> None:
        _require_active(ticket, "resolve")
        ticket.resolve(at, by, "resolved by operator", policy)

    return run


def close(by: str) -> Action:
    def run(ticket: TicketRow, at: datetime, policy: Policy) -> None:
        if ticket.status == "closed":
            raise Conflict("the ticket is already closed")
        ticket.close(at, by, policy)

    return run


def set_status(by: str, status: str) -> Action:
    """Move between statuses as an IT ticketing tool does; reopening is allowed from resolved only."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")

    def run(ticket: TicketRow, at: datetime, policy: Policy) -> None:
        current = ticket.status
        if status == current:
            return
        if status == "resolved":
            return resolve(by)(ticket, at, policy)
        if status == "closed":
            return close(by)(ticket, at, policy)
        if current == "closed":
            raise Conflict("a closed ticket cannot change status")
        if current == "resolved":
            ticket.reopen(at, by, "reopened by operator")
            current = "open"
        if status == "in_progress" and current != "in_progress":
            if current == "waiting":
                ticket.set_waiting(at, False, by, policy)
            ticket.acknowledge(at, by)
        elif status == "waiting":
            ticket.set_waiting(at, True, by, policy)
        elif status == "open":
            if current == "waiting":
                ticket.set_waiting(at, False, by, policy)
            if ticket.acknowledged_by:
                ticket.unacknowledge(at, by, policy)
        return None

    return run


def _require_active(ticket: TicketRow, verb: str) -> None:
    if ticket.status not in ACTIVE:
        raise Conflict(f"cannot {verb} a {ticket.status} ticket")
