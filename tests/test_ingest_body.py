"""Decoding webhook bodies: the JSON and form dialects the three sources really send."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import StreamReader, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.test_utils import make_mocked_request

from ingest.body import (
    MalformedBody,
    MediaType,
    UnsupportedMediaType,
    decode_body,
    media_type,
    read_body,
)

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.zabbix.webhook+json",
        "text/json",
    ],
)
def test_json_content_types_decode_as_json(content_type: str) -> None:
    assert media_type(content_type) is MediaType.JSON


def test_form_content_type_with_charset_decodes_as_form() -> None:
    assert media_type("application/x-www-form-urlencoded; charset=UTF-8") is MediaType.FORM


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", "application/xml", None])
def test_other_content_types_are_unsupported(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="application/json or application/x-www-form-urlencoded"):
        media_type(content_type)


def test_zabbix_json_body_decodes_to_its_fields() -> None:
    raw = payload("zabbix/ingest-problem-cpu.json")

    fields = decode_body(MediaType.JSON, raw)

    assert fields == json.loads(raw)
    assert fields["EVENT.UPDATE.ACTION"] == "{EVENT.UPDATE.ACTION}"


def test_json_with_byte_order_mark_is_accepted() -> None:
    raw = b"\xef\xbb\xbf" + payload("zabbix/ingest-problem-cpu.json")

    assert decode_body(MediaType.JSON, raw)["TRIGGER.ID"] == "23817"


def test_json_broken_by_an_unescaped_backslash_names_the_position() -> None:
    raw = payload("zabbix/ingest-problem-cpu.json").replace(b"DB Paris 02\\r\\n", b"CORP\\jdupont\\r\\n")

    with pytest.raises(MalformedBody, match=r"not valid JSON: .*line 3 column \d+") as error:
        decode_body(MediaType.JSON, raw)
    assert "backslash" in error.value.detail


def test_json_array_is_refused_as_not_an_object() -> None:
    raw = b"[" + payload("zabbix/ingest-problem-cpu.json") + b"]"

    with pytest.raises(MalformedBody, match="must be a JSON object, got an array"):
        decode_body(MediaType.JSON, raw)


def test_json_in_latin1_is_refused_as_not_utf8() -> None:
    raw = payload("zabbix/ingest-problem-cpu.json").decode().replace("DB Paris 02", "Dépôt Paris").encode("latin-1")

    with pytest.raises(MalformedBody, match=r"not valid UTF-8 \(byte \d+\)"):
        decode_body(MediaType.JSON, raw)


@pytest.mark.parametrize("kind", list(MediaType))
@pytest.mark.parametrize("raw", [b"", b"\r\n", b"  "])
def test_empty_body_is_refused(kind: MediaType, raw: bytes) -> None:
    with pytest.raises(MalformedBody, match="empty body"):
        decode_body(kind, raw)


def test_standard_form_is_percent_decoded_with_plus_as_space() -> None:
    fields = decode_body(MediaType.FORM, payload("nagios/ingest-pagerduty-service-problem.form.txt"))

    assert fields["SERVICEDESC"] == "DISK /"
    assert fields["SERVICEOUTPUT"] == "DISK CRITICAL - free space: / 912 MB (4% inode=71%):"
    assert fields["LONGDATETIME"] == "Sat Mar 14 10:26:41 CET 2026"
    assert fields["NAGIOS_SERVER"] == "nagios-paris-01"


def test_standard_form_keeps_a_bare_percent_sign() -> None:
    fields = decode_body(MediaType.FORM, b"HOSTNAME=web-01&SERVICEOUTPUT=DISK+at+100%+full&X=%zz")

    assert fields == {"HOSTNAME": "web-01", "SERVICEOUTPUT": "DISK at 100% full", "X": "%zz"}


def test_standard_form_repeated_key_keeps_the_last_value() -> None:
    fields = decode_body(MediaType.FORM, b"HOSTSTATE=UP&HOSTSTATE=DOWN&HOSTNAME=web-01\n")

    assert fields == {"HOSTSTATE": "DOWN", "HOSTNAME": "web-01"}


def test_raw_crlf_form_keeps_values_exactly_as_typed() -> None:
    fields = decode_body(MediaType.FORM, payload("solarwinds/ingest-opsgenie-create-volume.form.txt"))

    assert fields["AlertMessage"] == (
        'Volume D:\\ Label:Data on FS-PARIS-03 is 97 % full & growing; owner CORP\\jdupont said "do not purge"'
        " (ratio=0.97)."
    )
    assert fields["AlertDescription"].startswith("Déclenchée quand l'espace libre")
    assert fields["AcknowledgeUrl"].endswith("?ObjID=2291&ReturnTo=%2fOrion%2fNetPerfMon%2fAlerts.aspx")
    assert fields["AlertName"] == "Volume D:\\ almost full"
    assert fields["AcknowledgedBy"] == ""
    assert fields["tags"] == "solarwinds,paris,storage"
    assert len(fields) == 24


def test_raw_form_with_bare_line_feeds_and_padded_keys() -> None:
    raw = payload("solarwinds/ingest-opsgenie-create-volume.form.txt").replace(b"\r\n", b"\n")
    raw = raw.replace(b"\nSeverity=", b"\n  Severity =")

    fields = decode_body(MediaType.FORM, raw)

    assert fields["Severity"] == "Critical"
    assert fields["ObjectID"] == "2291"
    assert fields["tags"] == "solarwinds,paris,storage"


def test_form_with_invalid_utf8_keeps_the_alert() -> None:
    raw = payload("nagios/ingest-pagerduty-service-problem.form.txt").replace(b"HOSTNAME=web-01", b"HOSTNAME=web-01%E9")

    assert decode_body(MediaType.FORM, raw)["HOSTNAME"] == "web-01\ufffd"


def _incoming(content_length: int) -> tuple[StreamReader, web.Request]:
    """A request whose body arrives through a real StreamReader, fed by the test as a sender would."""
    loop = asyncio.get_running_loop()
    stream = StreamReader(BaseProtocol(loop), 2**23, loop=loop)  # never pauses: no transport
    headers = {"Content-Type": "application/json", "Content-Length": str(content_length)}
    return stream, make_mocked_request("POST", "/webhooks/zabbix", headers=headers, payload=stream)


async def test_a_content_length_that_lies_low_reads_only_what_it_announced() -> None:
    """HTTP framing ends the body at Content-Length: the rest is never read into this request, let alone buffered."""
    limit, chunk = 256 * 1024, 64 * 1024
    stream, request = _incoming(content_length=2048)
    sent = 4 * 1_048_576
    for _ in range(sent // chunk):
        stream.feed_data(b" " * chunk)
    stream.feed_eof()

    body = await read_body(request, limit)
    consumed = sent - len(await stream.read())

    assert len(body) == 2048
    assert consumed == 2048


async def test_sender_leaving_mid_body_is_a_malformed_body() -> None:
    stream, request = _incoming(content_length=900)
    stream.feed_data(b'{"EVENT.ID": "8471302", "TRIGGER.ID": "238')
    stream.set_exception(ConnectionResetError("Connection lost"))  # what aiohttp does when the peer closes

    with pytest.raises(MalformedBody, match="closed the connection before the end of the body"):
        await read_body(request, 1_048_576)
