"""Inputs nobody thought of, through the real HTTP layer: whatever a sender posts, never a 5xx.

`alertdesk run`'s app on a real port and a temp SQLite file, fed any body, Content-Type, Idempotency-Key and
Authorization header (raw bytes included). Every answer must be one CONTRACT §1 documents, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz import FUZZ, SOURCES, form_bodies, json_bodies, raw_bodies
from tests.live import LiveAlertdesk

TOKEN = "zbx-7Qm2vR9tLw4K"
LIMIT = 65_536
DOCUMENTED = {202, 400, 401, 404, 413, 415, 422}


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAlertdesk]:
    """Zabbix needs a token (so the Authorization header is read), the others are open; a small body limit."""
    with LiveAlertdesk(tmp_path_factory.mktemp("fuzz-http"), zabbix_token=TOKEN, max_body_bytes=LIMIT) as live:
        yield live


def header_bytes(max_size: int = 80) -> st.SearchStrategy[bytes]:
    """Any header value a client can put on the wire: printable, tab, and any byte from 0x80 up."""
    octet = st.integers(min_value=0x20, max_value=0xFF).filter(lambda b: b != 0x7F) | st.just(0x09)
    return st.lists(octet, max_size=max_size).map(bytes)


CONTENT_TYPES = st.sampled_from(
    [
        b"application/json",
        b"application/json; charset=utf-8",
        b"application/x-www-form-urlencoded",
        b"application/x-www-form-urlencoded; charset=utf-8",
        b"text/plain",
        b"multipart/form-data; boundary=----x",
        b"",
    ]
) | header_bytes(60)
AUTHORIZATIONS = st.sampled_from([f"Bearer {TOKEN}".encode(), b"Bearer ", b"Basic Zm9vOmJhcg==", b"bearer  x"]) | (
    header_bytes().map(lambda value: b"Bearer " + value)
)
IDEMPOTENCY_KEYS = st.sampled_from([b"zabbix-8471302-0-0", b"x" * 255, b"x" * 256]) | header_bytes(300)


def paths(sources: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    instance = st.none() | st.sampled_from(["paris", "a" * 63, "a" * 64, "Paris"]) | st.text(max_size=20)
    token = st.none() | st.sampled_from([TOKEN, "wrong"]) | st.text(max_size=10)

    def build(source: str, instance: str | None, token: str | None) -> str:
        path = f"/webhooks/{quote(source, safe='')}"
        if instance is not None:
            path += f"/{quote(instance, safe='')}"
        return path if token is None else f"{path}?token={quote(token, safe='')}"

    return st.builds(build, sources, instance, token)


def typed_bodies(source: str) -> st.SearchStrategy[tuple[bytes | None, bytes]]:
    """(Content-Type, body): mostly a body with its own type, sometimes any pairing."""
    return st.one_of(
        st.tuples(st.just(b"application/json"), json_bodies(source)),
        st.tuples(st.just(b"application/x-www-form-urlencoded"), form_bodies(source)),
        st.tuples(st.none() | CONTENT_TYPES, raw_bodies(source)),
    )


@FUZZ
@given(data=st.data())
def test_any_webhook_request_gets_a_documented_answer(desk: LiveAlertdesk, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(SOURCES), label="source")
    path = data.draw(paths(st.just(source)), label="path")
    content_type, body = data.draw(typed_bodies(source), label="body")
    headers: dict[str, str | bytes] = {} if content_type is None else {"Content-Type": content_type}
    # Zabbix needs its token: usually the right one, so its draws reach the normalizer too
    authorization = st.just(f"Bearer {TOKEN}".encode()) if source == "zabbix" else st.nothing()
    for name, values in (("Authorization", authorization | AUTHORIZATIONS), ("Idempotency-Key", IDEMPOTENCY_KEYS)):
        value = data.draw(st.none() | values, label=name)
        if value is not None:
            headers[name] = value

    status, raw, response_headers = desk.request("POST", path, body, headers)

    event(f"status {status}")  # --hypothesis-show-statistics: how deep the draws got
    assert status in DOCUMENTED, (status, raw[:300])
    assert response_headers.get_content_type() == "application/json"
    answer = json.loads(raw)
    if status == 202:
        assert answer["status"] in ("accepted", "ignored")
    else:
        assert answer["error"]
    if status == 413:
        assert len(body) > LIMIT
    if status == 422:
        assert all(fault["loc"] and fault["msg"] for fault in answer["detail"])


@FUZZ
@given(path=paths(st.sampled_from(["prtg", "NAGIOS", "zabbix.", "", "..", "nagios/x/y"]) | st.text(max_size=12)))
def test_any_webhook_path_gets_a_documented_answer(desk: LiveAlertdesk, path: str) -> None:
    status, raw, _ = desk.request("POST", path, b"{}", {"Content-Type": "application/json"})

    assert status in DOCUMENTED | {405}, (status, raw[:300])
    assert json.loads(raw)["error"]


async def test_nul_in_an_output_still_opens_a_ticket(database: tuple[str, str | None], tmp_path: Path) -> None:
    """Found by the fuzzing: PostgreSQL text cannot hold NUL, so the alert was answered 202, then dead-lettered."""
    url, schema = database
    problem = {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": "web-01",
        "SERVICEDESC": "DISK /",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "DISK CRITICAL\x00 - free space: / 1841 MB",
    }
    with LiveAlertdesk(tmp_path, database_url=url, database_schema=schema) as desk:
        status, _ = desk.post_json("/webhooks/nagios", problem)
        _, page = desk.get_json("/api/tickets")

    assert status == 202
    [ticket] = page["tickets"]
    assert ticket["description"] == "DISK CRITICAL\ufffd - free space: / 1841 MB"
