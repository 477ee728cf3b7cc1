"""Active tickets kept in memory between batches by SQLite's writer, trusted only while nobody else wrote.

Loading a key's ticket is the largest part of a batch (forty columns, a dozen dates to parse), and during an alert
storm the same tickets take nearly every repeat. The writer may reuse the rows it committed itself as long as the
database has not changed under it: SQLite's `PRAGMA data_version` changes exactly when another connection
committed, and under `BEGIN IMMEDIATE` nobody else can until we commit. Any doubt empties the cache: another
connection wrote, another connection is in use, a transaction failed, or the store wrote outside a batch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from ticketstore.lifecycle import KeyState
from ticketstore.ticket import TicketRow


class TicketCache:
    """dedup_key -> (its active ticket, the episode ids known to link to it); least recently used leaves first."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[TicketRow, set[str]]] = OrderedDict()
        self._seen: tuple[int, Any] | None = None  # (id of the DBAPI connection, its data_version)

    def check(self, conn: Connection) -> None:
        """Call inside the write transaction, before `take`: forget everything if the database changed."""
        seen = (id(conn.connection.dbapi_connection), conn.exec_driver_sql("PRAGMA data_version").scalar())
        if seen != self._seen:
            self._entries.clear()
            self._seen = seen

    def take(self, key: str, episode_ids: Iterable[str]) -> KeyState | None:
        """The key's state as `rows.load` would read it, or None when the database must be asked."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        ticket, known = entry
        wanted = set(episode_ids)
        if not wanted <= known:
            return None  # an episode we have not seen linked to this ticket: it may link elsewhere
        self._entries.move_to_end(key)
        return KeyState(latest=ticket, episodes=dict.fromkeys(wanted, ticket))

    def keep(self, states: dict[str, KeyState]) -> None:
        """After the commit: remember each key's ticket while it stays active."""
        for key, state in states.items():
            ticket = state.latest
            if ticket is None or not ticket.active or ticket.id is None:
                self._entries.pop(key, None)
                continue
            known = {ep for ep, x in state.episodes.items() if x is ticket}
            known.update(ep for ep, x in state.new_episodes if x is ticket)
            old = self._entries.get(key)
            if old is not None and old[0] is ticket:
                known |= old[1]
            self._entries[key] = (ticket, known)
            self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._seen = None
