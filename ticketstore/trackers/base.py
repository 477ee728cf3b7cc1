"""What every tracker shares: the event to mirror, the outcome, credentials read at each call, and one HTTP call
whose failures say how soon to try again (`Retry-After` on 429/503, slowly on 401/403).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

import aiohttp

from normalizers.schema import AlertdeskError
from ticketstore.ticket import ticket_number
from ticketstore.tracker_policy import Secret, Tracker

AUTH_BACKOFF = timedelta(minutes=5)  # a refused credential is retried this slowly, until someone fixes it

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class TrackerEvent:
    """One history entry of a ticket, with the ticket as it was then (the outbox row's payload)."""

    kind: str  # opened, acknowledged, comment, escalated, resolved, … (rows.TRACKED)
    actor: str | None
    detail: str
    ticket: Mapping[str, Any]

    @classmethod
    def from_payload(cls, kind: str, payload: str) -> TrackerEvent:
        data = json.loads(payload)
        entry = data["entry"]
        return cls(kind, entry.get("actor"), entry.get("detail") or "", data["ticket"])

    @property
    def number(self) -> str:
        return str(self.ticket["number"])

    @property
    def previous_number(self) -> str | None:
        previous = self.ticket.get("previous_ticket_id")
        return None if previous is None else ticket_number(int(previous))


def record_text(event: TrackerEvent, mark: str) -> list[str]:
    """The remote record's first text, the same in every tracker: what happened, which ticket, where, the runbook."""
    ticket = event.ticket
    lines = [ticket["description"] or ticket["title"], "", f"{mark} ticket {event.number}"]
    lines.append(f"Host: {ticket.get('host_display') or ticket['host']} · Source: {ticket['source']}")
    if ticket.get("runbook_url"):
        lines.append(f"Runbook: {ticket['runbook_url']}")
    return lines


async def previous_record(event: TrackerEvent, find: Callable[[str], Awaitable[R | None]]) -> R | None:
    """The remote record of the key's previous ticket, to link the new one to; None when there is none."""
    return None if event.previous_number is None else await find(event.previous_number)


@dataclass(frozen=True, slots=True)
class Synced:
    key: str  # the remote record's key: INC0012345, OPS-123, 4711
    created: bool  # this call created the record


@dataclass(frozen=True, slots=True)
class RemoteChange:
    """What a person did in the tracker, as alertdesk applies it."""

    event_id: str  # unique per remote change: a redelivery carries the same one
    number: str  # the alertdesk ticket number (the correlation id)
    person: str
    acknowledged: bool = False
    resolved: bool = False
    assigned: bool = False
    group: str | None = None
    assignee: str | None = None
    comment: str | None = None


class CallFailed(AlertdeskError):
    """A tracker call did not go through; `retry_in` when the tracker said when (or the credentials were refused)."""

    def __init__(self, message: str, retry_in: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class Mirror(Protocol):
    """One tracker's mapping of ticket events to its API calls."""

    name: str
    title: str  # "ServiceNow incident", "Jira issue", …

    async def sync(self, event: TrackerEvent) -> Synced: ...


def read_secret(secret: Secret, environ: Mapping[str, str]) -> str:
    """The file's content at each call, so a fixed credentials file works without a restart."""
    if secret.file is not None:
        try:
            return secret.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CallFailed(f"cannot read {secret.file}: {exc.strerror}", AUTH_BACKOFF) from None
    value = environ.get(secret.env or "", "")
    if not value:
        raise CallFailed(f"environment variable {secret.env} is not set", AUTH_BACKOFF)
    return value


class Remote:
    """HTTP calls to one tracker, bounded in time; every failure becomes a `CallFailed`."""

    def __init__(
        self,
        config: Tracker,
        session: aiohttp.ClientSession,
        environ: Mapping[str, str],
        *,
        now: Callable[[], datetime],
        auth_backoff: timedelta = AUTH_BACKOFF,
    ) -> None:
        self.config = config
        self._now = now
        self._session = session
        self._environ = environ
        self._timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._auth_backoff = auth_backoff

    def secret(self) -> str:
        return read_secret(self.config.secret, self._environ)

    async def call(
        self,
        method: str,
        path: str,
        *,
        auth: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one)."""
        url = self.config.url.rstrip("/") + path
        try:
            async with self._session.request(
                method,
                url,
                headers={"Accept": "application/json", **({"Authorization": auth} if auth else {}), **(headers or {})},
                params=params,
                json=body,
                timeout=self._timeout,
            ) as resp:
                text = await resp.text()
                if resp.status < 300:
                    return json.loads(text) if text.strip() else None
                why = f"HTTP {resp.status} from {method} {path}: {_message(text)}"
                if resp.status in (429, 503):
                    raise CallFailed(why, retry_after(resp.headers.get("Retry-After"), self._now()))
                if resp.status in (401, 403):
                    raise CallFailed(why + " (check the credentials)", self._auth_backoff)
                raise CallFailed(why)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CallFailed(f"{method} {path}: {exc.__class__.__name__} {exc}".strip()) from exc
        except ValueError as exc:
            raise CallFailed(f"{method} {path}: the answer is not JSON ({exc})") from exc


def basic_auth(user: str, secret: str) -> str:
    """The `Authorization` value of HTTP basic auth (UTF-8, as the trackers' documentation expects)."""
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when - now, timedelta(0))


def _message(text: str) -> str:
    """The error message of the trackers' error bodies (ServiceNow, Jira, Zendesk), else the text cut short."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # ServiceNow {"error": {"message", "detail"}}
            return " - ".join(str(error[k]) for k in ("message", "detail") if error.get(k))
        if data.get("errorMessages") or data.get("errors"):  # Jira
            return "; ".join(
                [*map(str, data.get("errorMessages") or []), *map(str, (data.get("errors") or {}).items())]
            )
        if isinstance(error, str):  # Zendesk {"error": "RecordInvalid", "description": …}
            return " - ".join(str(data[k]) for k in ("error", "description") if data.get(k))
    return text.strip()[:300]
