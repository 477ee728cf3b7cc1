"""Runbook links: a route's or severity's `runbook` template filled in with the alert's fields (CONTRACT §7).

Each value is URL-encoded as one path segment or query value, so a service named `Disk /var & logs` still makes a
valid link; a template naming anything else is refused when the policy loads, not when the first ticket opens.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from urllib.parse import quote

PLACEHOLDERS = ("source", "instance", "host", "service", "dedup_key")


def check_template(template: str) -> str:
    """The template itself, or ValueError naming what is wrong (the policy reports it with the field and line)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write placeholders as {{host}}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}; known: {known}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format or conversion")
    if not template.startswith(("http://", "https://")):
        raise ValueError("a runbook link starts with http:// or https://")
    return template


def render(template: str, fields: Mapping[str, str | None]) -> str:
    """The link, each value URL-encoded (`/` and `&` included); a missing value is empty."""
    return template.format_map({name: quote(fields.get(name) or "", safe="") for name in PLACEHOLDERS})
