"""Maintenance windows in the database: create, list, end, and the copy each store process keeps.

Windows are rows, so every store process applies the same ones. A process reads them at most once a second
(`WindowCache`, inside the batch transaction it already holds), so a window created through one `alertdesk store`
silences the alerts another one stores within about a second, at the cost of one small query per second.
`MaintenanceWindows` is what the API, the CLI (and a console) call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection

from normalizers.schema import AlertdeskError
from ticketstore import tables as t
from ticketstore.maintenance import (
    FIELDS,
    State,
    Weekly,
    Window,
    WindowNotFound,
    WindowRequest,
    Windows,
    zone_of,
)
from ticketstore.policy import Policy

if TYPE_CHECKING:  # the store reads windows through `WindowCache`; this module's writers take the store
    from ticketstore.store import TicketStore

w = t.maintenance_windows.c
ENDED_SHOWN = 200  # the newest ended windows listed; older ones stay in the table


class WindowAlreadyEnded(AlertdeskError):
    """`end` on a window that is over already: 409."""


def policy_zone(policy: Policy) -> Any:
    """Weekly windows are read in the policy's time zone (its business hours'), UTC without one."""
    return zone_of(policy.business_hours.timezone if policy.business_hours else None)


def from_row(row: Any) -> Window:
    m = row._mapping
    recurrence = Weekly.model_validate(m["recurrence"]) if m["recurrence"] else None
    return Window(
        id=m["id"],
        match={name: m[name] for name in FIELDS if m[name] is not None},
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        comment=m["comment"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        recurrence=recurrence,
        ended_by=m["ended_by"],
        ended_at=m["ended_at"],
    )


_NOT_OVER = select(t.maintenance_windows).where(w.ended_at.is_(None))


def not_over(conn: Connection, now: datetime) -> list[Window]:
    """Windows that may still apply (active or upcoming), oldest first."""
    query = _NOT_OVER.where(or_(w.ends_at.is_(None), w.ends_at > now)).order_by(w.id)
    return [from_row(r) for r in conn.execute(query)]


def stamp(conn: Connection) -> tuple[object, ...]:
    """What changes whenever a window is added or ended by anyone: a cheap look for other processes' changes."""
    return tuple(
        conn.execute(
            select(func.count(), func.max(w.id), func.max(w.ended_at)).select_from(t.maintenance_windows)
        ).one()
    )


class WindowCache:
    """The windows one store process applies, read again when `every` seconds (monotonic) have passed."""

    def __init__(self, policy: Policy, every: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._zone = policy_zone(policy)
        self._every = every
        self._monotonic = monotonic
        self._read_at: float | None = None
        self._windows = Windows(zone=self._zone)

    def current(self, conn: Connection, now: datetime) -> Windows:
        """Call inside a transaction: the windows, from memory while fresh enough."""
        moment = self._monotonic()
        if self._read_at is None or moment - self._read_at >= self._every:
            self._windows = Windows(tuple(not_over(conn, now)), self._zone)
            self._read_at = moment
        return self._windows


class MaintenanceWindows:
    """Create, list and end windows on the store's database, at the store's clock."""

    def __init__(self, store: TicketStore) -> None:
        self._store = store
        self.zone = policy_zone(store.policy)

    async def create(self, request: WindowRequest, by: str) -> Window:
        """Raises `InvalidWindow` naming the field at fault; nothing is written then."""
        now = self._store.now()
        new = request.window(now, by)
        values: Mapping[str, Any] = {
            **{name: new.match.get(name) for name in FIELDS},
            "starts_at": new.starts_at,
            "ends_at": new.ends_at,
            "recurrence": new.recurrence.model_dump(mode="json") if new.recurrence else None,
            "comment": new.comment,
            "created_by": new.created_by,
            "created_at": now,
        }

        def run(conn: Connection) -> Window:
            row_id = conn.execute(insert(t.maintenance_windows).returning(w.id), [dict(values)]).scalar_one()
            return from_row(conn.execute(select(t.maintenance_windows).where(w.id == row_id)).one())

        return await self._store.run(run)

    async def list(self, state: State | None = None) -> list[Window]:
        """Windows in `state` now (all: the active and upcoming ones, then the newest ended), oldest first."""
        now = self._store.now()

        def run(conn: Connection) -> list[Window]:
            current = not_over(conn, now)
            ended_query = (
                select(t.maintenance_windows)
                .where(or_(w.ended_at.is_not(None), w.ends_at <= now))
                .order_by(w.id.desc())
                .limit(ENDED_SHOWN)
            )
            ended = [from_row(r) for r in conn.execute(ended_query)][::-1]
            return [x for x in current + ended if state is None or x.state(now, self.zone) == state]

        return await self._store.run(run)

    async def get(self, window_id: int) -> Window:
        def run(conn: Connection) -> Window:
            row = conn.execute(select(t.maintenance_windows).where(w.id == window_id)).first()
            if row is None:
                raise WindowNotFound(f"no maintenance window {window_id}")
            return from_row(row)

        return await self._store.run(run)

    async def end(self, window_id: int, by: str) -> Window:
        """End it now; the store's chore resumes its tickets within a second. Kept in the list as ended."""
        now = self._store.now()

        def run(conn: Connection) -> Window:
            row = conn.execute(select(t.maintenance_windows).where(w.id == window_id)).first()
            if row is None:
                raise WindowNotFound(f"no maintenance window {window_id}")
            window = from_row(row)
            if window.state(now, self.zone) == "ended":
                raise WindowAlreadyEnded(f"maintenance window {window_id} is over already")
            conn.execute(update(t.maintenance_windows).where(w.id == window_id).values(ended_at=now, ended_by=by))
            return from_row(conn.execute(select(t.maintenance_windows).where(w.id == window_id)).one())

        return await self._store.run(run)
