"""A broadcast "the store committed something" signal, so the store's chores wake early instead of polling.

Each listener has its own event, so two loops never take each other's wake-up; `notify` sets them all. It only
reaches listeners in the same process: other processes find what is due at their next scheduled look.
"""

from __future__ import annotations

import asyncio


class Nudge:
    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []

    def listen(self) -> asyncio.Event:
        """An event set by every later `notify`; the listener clears it."""
        event = asyncio.Event()
        self._events.append(event)
        return event

    def notify(self) -> None:
        for event in self._events:
            event.set()
