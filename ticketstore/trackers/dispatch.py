"""The loop that mirrors tickets into their trackers: it drains the outbox's `tracker:<name>` rows.

It runs beside the store worker, never in a request's path, with its own loop, so a tracker that is down or slow
delays nothing but its own records. Each row is one ticket event; a ticket's events go out one at a time and in
order. The remote key found or created is kept in the ticket's `external_refs`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Connection, insert, select, update

from ticketstore import tables as t
from ticketstore.db import Engines
from ticketstore.escalation import outbox
from ticketstore.policy import Policy, PolicyError
from ticketstore.rows import for_update
from ticketstore.trackers.base import AUTH_BACKOFF, CallFailed, Mirror, Remote, Synced, TrackerEvent
from ticketstore.trackers.jira import Jira
from ticketstore.trackers.servicenow import ServiceNow
from ticketstore.trackers.zendesk import Zendesk

logger = logging.getLogger(__name__)


class TrackerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "alertdesk_tracker_events_total",
            "Ticket events mirrored to a tracker, by tracker and outcome",
            ["tracker", "outcome"],
            registry=registry,
        )


def mirrors(
    policy: Policy,
    session: aiohttp.ClientSession,
    environ: Mapping[str, str],
    *,
    now: Callable[[], datetime],
    auth_backoff: timedelta = AUTH_BACKOFF,
) -> dict[str, Mirror]:
    """One mirror per tracker of the policy, by name."""
    built: dict[str, Mirror] = {}
    for name, config in policy.trackers.items():
        remote = Remote(config, session, environ, now=now, auth_backoff=auth_backoff)
        if config.type == "servicenow":
            built[name] = ServiceNow(name, remote)
        elif config.type == "jira":
            built[name] = Jira(name, remote)
        else:
            built[name] = Zendesk(name, remote)
    return built


def check_environ(policy: Policy, environ: Mapping[str, str]) -> None:
    """A tracker whose `*_env` variable is not set stops start-up, naming the field (files are read at each call,
    so a file fixed later works without a restart)."""
    for name, config in policy.trackers.items():
        for field in ("password_env", "token_env", "inbound_token_env"):
            variable = getattr(config, field)
            if variable is not None and not environ.get(variable):
                raise PolicyError(f"trackers.{name}.{field}: environment variable {variable} is not set")


def lease_for(policy: Policy) -> timedelta:
    """How long a claimed event is held: room for a sync's calls (up to four) at the slowest tracker's timeout."""
    slowest = max((config.timeout for config in policy.trackers.values()), default=10.0)
    return timedelta(seconds=4 * slowest + 5)


class TrackerDispatcher:
    def __init__(
        self,
        engines: Engines,
        mirrors: Mapping[str, Mirror],
        metrics: TrackerMetrics,
        *,
        now: Callable[[], datetime],
        lease: timedelta,
        max_attempts: int = 20,
        backoff: timedelta = timedelta(seconds=10),
    ) -> None:
        self._engines = engines
        self._mirrors = mirrors
        self._metrics = metrics
        self._now = now
        self._lease = lease
        self._max_attempts = max_attempts
        self._backoff = backoff

    async def run_once(self, limit: int = 20) -> int:
        """Mirror what is due; returns how many events were attempted."""
        claimed = await outbox.claim(self._engines, self._now(), limit=limit, lease=self._lease, trackers=True)
        results = await asyncio.gather(*(self._deliver(p) for p in claimed))
        if results:
            await outbox.complete(
                self._engines, list(results), self._now(), max_attempts=self._max_attempts, backoff=self._backoff
            )
        return len(results)

    async def _deliver(self, p: outbox.Pending) -> outbox.Result:
        name = p.channel.removeprefix(outbox.TRACKER)
        mirror = self._mirrors.get(name)
        if mirror is None:
            self._metrics.calls.labels(name, "unknown_tracker").inc()
            return outbox.Result(p, f"tracker {name!r} is not in the policy")
        try:
            synced = await mirror.sync(TrackerEvent.from_payload(p.event, p.payload))
            made = "created" if synced.created else "found (made by an earlier attempt)"
            line = outbox.history_entry(p, self._now(), "tracker", f"{mirror.title} {synced.key} {made}")
            await self._engines.transact(lambda conn: _record_ref(conn, p.ticket_id, name, synced, line))
        except CallFailed as exc:
            self._metrics.calls.labels(name, "failed").inc()
            logger.warning("%s of ticket %d to tracker %s failed: %s", p.event, p.ticket_id, name, exc)
            return outbox.Result(p, str(exc), retry_in=exc.retry_in)
        except (KeyError, TypeError, IndexError) as exc:  # an answer without what its documentation promises
            self._metrics.calls.labels(name, "failed").inc()
            logger.warning("%s of ticket %d to tracker %s: unexpected answer: %r", p.event, p.ticket_id, name, exc)
            return outbox.Result(p, f"unexpected answer from the tracker ({exc.__class__.__name__}: {exc})")
        self._metrics.calls.labels(name, "sent").inc()
        return outbox.Result(p, None)


def _record_ref(conn: Connection, ticket_id: int, name: str, synced: Synced, line: dict[str, Any]) -> None:
    """Add the remote key to the ticket's `external_refs` and its history `line`, in one transaction (row locked):
    a ticket never shows a tracker's key without the line that tells where it came from, even if the process dies
    right after. A key already recorded writes nothing, unless this call created a new record."""
    c = t.tickets.c
    query = for_update(conn, select(c.external_refs).where(c.id == ticket_id))
    refs: dict[str, Any] = dict(conn.execute(query).scalar_one() or {})
    if refs.get(name) != synced.key:
        conn.execute(update(t.tickets).where(c.id == ticket_id).values(external_refs={**refs, name: synced.key}))
    elif not synced.created:
        return
    conn.execute(insert(t.history), [line])
