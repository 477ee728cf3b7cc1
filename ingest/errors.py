"""A middleware that answers every error with a small JSON body: never an HTML page, never a stack trace.

Senders and operators read these bodies in their own logs, so they must be short, stable and machine-readable;
the traceback of an unexpected exception goes to our log instead.
"""

from __future__ import annotations

import logging
import re

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

logger = logging.getLogger(__name__)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn an aiohttp HTTP error (404, 405, 413 …) or any unexpected exception (500) into JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # redirects, and errors whose handler already wrote JSON
        return _from_http_exception(exc)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal"}, status=500)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    body = {"error": _slug(exc.reason)}
    if exc.text and exc.text != f"{exc.status}: {exc.reason}":  # aiohttp's default text says nothing more
        body["detail"] = exc.text
    headers = CIMultiDict(exc.headers)  # keeps e.g. `Allow` of a 405
    for name in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH):
        headers.popall(name, None)
    return web.json_response(body, status=exc.status, headers=headers)


def _slug(reason: str) -> str:
    """`Method Not Allowed` → `method_not_allowed`."""
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"
