"""An aiohttp access logger that never writes a webhook token.

aiohttp's default access log prints the request line, and `?token=` is part of it; this one prints the same
facts with every `token` query value replaced by `***`. Headers (where a Bearer token travels) are not logged.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

from ingest.auth import TOKEN_QUERY_PARAMETER


def redacted(url: URL) -> str:
    """Path and query of `url` with the token's value masked; other parameters kept as sent."""
    query = url.query
    if not any(name.lower() == TOKEN_QUERY_PARAMETER for name in query):
        return url.raw_path_qs
    masked = [(name, "***" if name.lower() == TOKEN_QUERY_PARAMETER else value) for name, value in query.items()]
    return url.with_query(masked).raw_path_qs


class RedactingAccessLogger(AbstractAccessLogger):
    """Pass as `access_log_class=` to `web.AppRunner` / `web.run_app`; `log_format` is not used."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields = {
            "remote": request.remote or "-",
            "method": request.method,
            "path": redacted(request.rel_url),
            "status": response.status,
            "duration_s": round(time, 6),
            "user_agent": request.headers.get("User-Agent", "-"),
        }
        # The same facts as fields of their own, for ALERTDESK_LOG_FORMAT=json.
        self.logger.info(
            '%(remote)s "%(method)s %(path)s" %(status)d %(duration_s).3fs "%(user_agent)s"', fields, extra=fields
        )
