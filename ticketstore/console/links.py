"""Where the ticket page's links go: only http(s) URLs become links, and a tracker's remote key its record's page.

A runbook or source link that is not http(s) (`javascript:`, `data:`) is shown as text, never as a link. A remote
key becomes a link only when the tracker is in the policy and the key has the tracker's form; otherwise it is text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ticketstore.tracker_policy import Tracker

# The keys each tracker hands out: ServiceNow incident numbers, Jira issue keys, Zendesk ticket ids.
_KEYS = {
    "servicenow": re.compile(r"^[A-Z]{2,10}[0-9]{4,12}$"),
    "jira": re.compile(r"^[A-Z][A-Z0-9_]{0,49}-[0-9]{1,12}$"),
    "zendesk": re.compile(r"^[0-9]{1,18}$"),
}


def http_link(value: str) -> str | None:
    """`value` when it is an http(s) URL (shown as a link), else None (shown as text: no `javascript:`)."""
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    tracker: str  # the policy's name for it
    kind: str  # servicenow | jira | zendesk, or "" when the tracker is no longer in the policy
    key: str
    url: str | None


def remote_records(refs: Mapping[str, str], trackers: Mapping[str, Tracker]) -> list[RemoteRecord]:
    """The ticket's `external_refs`, each with the URL of its record when it can be built reliably."""
    return [_record(name, key, trackers.get(name)) for name, key in sorted(refs.items())]


def _record(name: str, key: str, tracker: Tracker | None) -> RemoteRecord:
    if tracker is None or not _KEYS[tracker.type].match(key):
        return RemoteRecord(name, tracker.type if tracker else "", key, None)
    base = tracker.url.rstrip("/")
    if tracker.type == "servicenow":  # the incident by its number: what a person would type in the search
        url = f"{base}/nav_to.do?uri={quote('incident.do?sysparm_query=number=' + key, safe='')}"
    elif tracker.type == "jira":
        url = f"{base}/browse/{key}"
    else:
        url = f"{base}/agent/tickets/{key}"
    return RemoteRecord(name, tracker.type, key, http_link(url))
