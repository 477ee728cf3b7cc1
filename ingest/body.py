"""Reading a webhook body within a size limit and decoding it, by Content-Type, into a dict of fields.

The limit is enforced while reading, never after: a sender that lies about its size, or streams a chunked body,
costs at most the limit plus one chunk of memory. Decoding accepts what the three sources really send, including
the raw form dialect of Orion, Opsgenie and iLert, whose values are not URL-encoded (see `_decode_form`).
"""

from __future__ import annotations

import asyncio
import re
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

_CHUNK_BYTES = 64 * 1024
_RAW_FORM_SEPARATOR = re.compile(r"&\r?\n")


class BodyError(Exception):
    """A body ingest cannot use; `detail` tells the sender why, without echoing the body."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedBody(BodyError):
    """Not parseable, not an object, or empty: 400."""


class BodyTooLarge(BodyError):
    """Larger than the configured limit: 413."""


class UnsupportedMediaType(BodyError):
    """A Content-Type ingest does not decode: 415."""


class MediaType(Enum):
    JSON = "json"
    FORM = "form"


def media_type(content_type: str | None) -> MediaType:
    """The decoder for a Content-Type header, parameters such as `charset` ignored."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    if essence in ("application/json", "text/json") or (
        essence.startswith("application/") and essence.endswith("+json")
    ):
        return MediaType.JSON
    if essence == "application/x-www-form-urlencoded":
        return MediaType.FORM
    shown = essence or "none"
    raise UnsupportedMediaType(
        f"Content-Type {shown} is not supported: send application/json or application/x-www-form-urlencoded"
    )


def check_declared_size(request: web.BaseRequest, limit: int) -> None:
    """Refuse a body announced as too large before reading a byte of it."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body of {request.content_length} bytes exceeds the limit of {limit} bytes")


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, stopping as soon as it exceeds `limit` (chunked, or a Content-Length that lies)."""
    check_declared_size(request, limit)
    if request.content_length is not None and not request.body_exists:
        return b""
    chunks: list[bytes] = []
    size = 0
    try:
        if request.content_length is not None:  # announced and within the limit: read exactly that much
            return await request.content.readexactly(request.content_length)
        async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except HttpProcessingError as exc:  # e.g. bad chunked framing found while reading
        raise MalformedBody(f"body could not be read: {exc.message}") from None
    except (ConnectionResetError, asyncio.IncompleteReadError):  # the sender went away mid-body: not our error
        raise MalformedBody("the sender closed the connection before the end of the body") from None
    return b"".join(chunks)


def decode_body(kind: MediaType, raw: bytes) -> dict[str, Any]:
    """The body's fields: any JSON values for a JSON object, strings for a form."""
    if not raw or raw.isspace():  # what `not raw.strip()` says, without copying up to a MiB
        raise MalformedBody("empty body")
    if kind is MediaType.JSON:
        return _decode_json(raw)
    return _decode_form(raw)


def _decode_json(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = orjson.loads(text.removeprefix("\ufeff"))  # a BOM, as Windows tools write, is harmless
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"body is not valid JSON: {exc}. A value pasted into a template without JSON escaping "
            "(a quote or a backslash such as CORP\\user) breaks JSON"
        ) from None
    if not isinstance(value, dict):
        raise MalformedBody(f"body must be a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _decode_form(raw: bytes) -> dict[str, str]:
    """Standard URL-encoded form, or the raw dialect when a line break follows an `&`.

    Undecodable bytes become U+FFFD rather than a 400: Nagios outputs and Orion bodies are not always UTF-8, and
    one odd character is not worth losing the alert. A repeated key keeps its last value.
    """
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if _RAW_FORM_SEPARATOR.search(text):
        return _decode_raw_form(text)
    # parse_qsl leaves a `%` that starts no valid escape as it is, so "disk 100% full" survives. A final line
    # break (a body written from a file) is not part of the last value: a real one would be sent as %0A.
    return dict(parse_qsl(text.rstrip("\r\n"), keep_blank_values=True, errors="replace"))


def _decode_raw_form(text: str) -> dict[str, str]:
    """`key=value&` CRLF `key=value&` …: values are sent as typed, so they may hold `&`, `=`, `%`, `\\`, `"`."""
    fields: dict[str, str] = {}
    for pair in _RAW_FORM_SEPARATOR.split(text):
        name, _, value = pair.partition("=")
        name = name.strip()
        if name:
            fields[name] = value.rstrip("\r\n")
    return fields
