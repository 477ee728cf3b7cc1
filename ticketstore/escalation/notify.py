"""Sending notifications: the channel formats (webhook, Slack, Teams, Webex) and the loop that drains the outbox.

The loop runs beside the store worker and never in a request's path, so a dead endpoint slows nothing but its
own notifications: each send is bounded in time, retried a few times at once (tenacity), then rescheduled in the
outbox with a growing delay that survives restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from ticketstore.db import Engines
from ticketstore.escalation import outbox
from ticketstore.policy import Channel, Policy

logger = logging.getLogger(__name__)

_COLOURS = {"critical": "B00020", "major": "E65100", "minor": "F9A825", "warning": "FBC02D", "info": "1976D2"}


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "alertdesk_notifications_total",
            "Notification attempts, by channel and outcome",
            ["channel", "outcome"],
            registry=registry,
        )
        self.outbox = Gauge("alertdesk_outbox_pending", "Notifications waiting in the outbox", registry=registry)


def ticket_link(public_url: str | None, ticket_id: int) -> str | None:
    """`<ALERTDESK_PUBLIC_URL>/tickets/{id}`: the ticket's page in the console; None without a public URL."""
    return f"{public_url.rstrip('/')}/tickets/{ticket_id}" if public_url else None


def render(channel: Channel, p: outbox.Pending, public_url: str | None = None) -> dict[str, Any]:
    """The body each kind of channel expects (CONTRACT §3 for `webhook`); with a public URL, the ticket's link."""
    ticket = json.loads(p.payload)
    link = ticket_link(public_url, ticket["id"])
    if channel.type == "webhook":
        body = {"event": p.event, "level": p.level, "idempotency_key": p.idempotency_key, "ticket": ticket}
        return body if link is None else {**body, "url": link}
    headline = f"[{ticket['priority']}] {ticket['number']} {p.event.replace('_', ' ')}: {ticket['title']}"
    facts = {
        "Severity": ticket["severity"],
        "Status": ticket["status"],
        "Host": ticket.get("host_display") or ticket["host"],
        "Group": ticket.get("assigned_group") or "-",
        "Escalation level": str(p.level),
    }
    runbook = ticket.get("runbook_url")
    if channel.type == "slack":
        title = f"*<{link}|{_slack_escape(headline)}>*" if link else f"*{headline}*"
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": title}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": " · ".join(f"{k}: {v}" for k, v in facts.items())}],
            },
        ]
        if runbook:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{runbook}|Runbook>"}})
        return {"text": headline if link is None else f"{headline} {link}", "blocks": blocks}
    if channel.type == "webex":  # Webex incoming webhook: one markdown message
        lines = [f"**{headline}**" if link is None else f"**[{headline}]({link})**"]
        lines.append(" · ".join(f"{k}: {v}" for k, v in facts.items()))
        if runbook:
            lines.append(f"[Runbook]({runbook})")
        return {"markdown": "\n\n".join(lines)}
    card: dict[str, Any] = {  # Microsoft Teams incoming webhook: a MessageCard
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": headline,
        "themeColor": _COLOURS.get(ticket["severity"], "607D8B"),
        "title": headline,
        "sections": [{"facts": [{"name": k, "value": v} for k, v in facts.items()]}],
    }
    buttons = [(name, uri) for name, uri in (("Open ticket", link), ("Runbook", runbook)) if uri]
    if buttons:
        card["potentialAction"] = [
            {"@type": "OpenUri", "name": name, "targets": [{"os": "default", "uri": uri}]} for name, uri in buttons
        ]
    return card


def _slack_escape(text: str) -> str:
    """Slack's three control characters, so a title cannot break out of the link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Retryable(Exception):
    pass


class Notifier:
    def __init__(
        self,
        engines: Engines,
        policy: Policy,
        session: aiohttp.ClientSession,
        metrics: NotifyMetrics,
        *,
        now: Callable[[], datetime],
        timeout: float = 10.0,
        max_attempts: int = 20,
        backoff: timedelta = timedelta(seconds=10),
        public_url: str | None = None,
    ) -> None:
        """`public_url`: the console's base (ALERTDESK_PUBLIC_URL); messages then link to the ticket's page."""
        self._engines = engines
        self._policy = policy
        self._session = session
        self._metrics = metrics
        self._now = now
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._public_url = public_url

    async def run_once(self, limit: int = 20) -> int:
        """Send what is due; returns how many were attempted."""
        claimed = await outbox.claim(self._engines, self._now(), limit=limit, lease=timedelta(minutes=2))
        results = await asyncio.gather(*(self._deliver(p) for p in claimed))
        if results:
            await outbox.complete(
                self._engines, list(results), self._now(), max_attempts=self._max_attempts, backoff=self._backoff
            )
        self._metrics.outbox.set(await outbox.pending_count(self._engines))
        return len(results)

    async def next_due(self) -> datetime | None:
        """When `run_once` next has something to send (perhaps already past), or None."""
        return await outbox.next_due(self._engines)

    async def _deliver(self, p: outbox.Pending) -> outbox.Result:
        channel = self._policy.channels.get(p.channel)
        if channel is None:
            self._metrics.sent.labels(p.channel, "unknown_channel").inc()
            return outbox.Result(p, f"channel {p.channel!r} is no longer in the policy")
        body = render(channel, p, self._public_url)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_Retryable),
                wait=wait_random_exponential(multiplier=0.2, max=2.0),
                stop=stop_after_attempt(3),
                reraise=True,
            ):
                with attempt:
                    await self._post(channel.url, body, p.idempotency_key)
        except (_Retryable, aiohttp.ClientError, TimeoutError) as exc:
            self._metrics.sent.labels(p.channel, "failed").inc()
            logger.warning("notification %s via %s failed: %s", p.idempotency_key, p.channel, exc)
            return outbox.Result(p, str(exc) or exc.__class__.__name__)
        self._metrics.sent.labels(p.channel, "sent").inc()
        return outbox.Result(p, None)

    async def _post(self, url: str, body: dict[str, Any], key: str) -> None:
        try:
            async with self._session.post(
                url, json=body, headers={"Idempotency-Key": key}, timeout=self._timeout
            ) as resp:
                if resp.status >= 300:
                    raise _Retryable(f"HTTP {resp.status} from the endpoint")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retryable(f"{exc.__class__.__name__}: {exc}") from exc
