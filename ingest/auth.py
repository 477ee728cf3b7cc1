"""Per-source webhook tokens: who may post, and which sources are left open."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import hdrs, web

from normalizers.schema import Source

TOKEN_QUERY_PARAMETER = "token"


def open_sources(tokens: Mapping[Source, str]) -> list[Source]:
    """The sources anyone can post to, for the start-up warning."""
    return [source for source in Source if not tokens.get(source)]


def is_authorized(request: web.BaseRequest, expected: str | None) -> bool:
    """True when no token is configured, or the request carries it as a Bearer header or `?token=`.

    Some senders cannot set a header (older Orion actions, plain notification scripts), hence `?token=`.
    Both candidates are compared in constant time, so a wrong header does not hide a right query token.
    """
    if expected is None:
        return True
    wanted = expected.encode()
    candidates = [_bearer(request), request.rel_url.query.get(TOKEN_QUERY_PARAMETER)]
    # surrogateescape: aiohttp decodes header bytes that are not UTF-8 as surrogates, which plain encode() refuses
    matches = [hmac.compare_digest(c.encode(errors="surrogateescape"), wanted) for c in candidates if c is not None]
    return any(matches)


def _bearer(request: web.BaseRequest) -> str | None:
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None
