"""The console's maintenance windows page through a real aiohttp server, on SQLite and PostgreSQL.

What a person notices: the window they created or silenced from a ticket in the list under their name, a new
problem on that host opening suppressed, the ticket resuming once the window is ended, the field at fault named,
and that a viewer or a form without its token changes nothing.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from pytest_aiohttp import AiohttpClient

from tests.conftest import Clock
from tests.test_console import Console, field, make_console
from ticketstore.db import Engines
from ticketstore.escalation.resume import resume_ended
from ticketstore.windows import MaintenanceWindows


@pytest.fixture
async def desk(engines: Engines, clock: Clock, aiohttp_client: AiohttpClient) -> Console:
    return await make_console(engines, clock, aiohttp_client)


def row(html: str, window_id: int) -> str:
    found = re.search(rf'<tr id="window-{window_id}">(.*?)</tr>', html, re.S)
    assert found, f"no window {window_id} on the page"
    return found.group(1)


def section(html: str, name: str) -> str:
    found = re.search(rf'<section aria-labelledby="{name}-h">(.*?)</section>', html, re.S)
    assert found, f"no {name} section"
    return found.group(1)


async def test_silencing_a_host_from_its_ticket_suppresses_its_new_problems_until_the_window_ends(
    desk: Console,
) -> None:
    ticket_id = await desk.ticket("web01")
    await desk.sign_in("alice")
    ticket_page = await (await desk.client.get(f"/tickets/{ticket_id}")).text()
    assert ">Silence this host for 2 h</button>" in ticket_page
    answer = await desk.client.post(
        f"/tickets/{ticket_id}/silence",
        data={"csrf": field(ticket_page, "csrf"), "by": "mallory"},
        allow_redirects=False,
    )
    assert answer.status == 303 and answer.headers["Location"].startswith("/maintenance#window-")
    window_id = int(answer.headers["Location"].rsplit("-", 1)[1])
    page = await (await desk.client.get("/maintenance")).text()
    active = row(section(page, "active"), window_id)
    assert "<code>host=web01</code>" in active and "<code>source=nagios</code>" in active
    assert '<td class="created-by">alice</td>' in active and "silenced from INC-" in active
    [window] = await MaintenanceWindows(desk.store).list("active")
    assert window.ends_at is not None and window.ends_at - window.starts_at == timedelta(hours=2)

    other = await desk.ticket("web01", "another problem")  # the same key: still the ticket, now silenced
    assert other == ticket_id
    elsewhere = await desk.ticket("web02")
    assert (await desk.queries.get(elsewhere)).suppressed is False  # type: ignore[union-attr]
    queue = await (await desk.client.get("/tickets?q=web01")).text()
    assert '<span class="badge">suppressed</span>' in queue

    csrf = field(page, "csrf")
    end = await desk.client.post(f"/maintenance/{window_id}/end", data={"csrf": csrf}, allow_redirects=False)
    assert end.status == 303 and end.headers["Location"] == "/maintenance"
    page = await (await desk.client.get("/maintenance")).text()
    ended = row(section(page, "ended"), window_id)
    assert '<span class="ended-by">alice</span>' in ended and "End now" not in ended
    await resume_ended(desk.store)  # what the store's maintenance chore runs every second
    ticket = await desk.queries.get(ticket_id)
    assert ticket is not None and ticket.suppressed is False
    again = await desk.client.post(f"/maintenance/{window_id}/end", data={"csrf": csrf})
    assert again.status == 409 and "is over already" in await again.text()
    missing = await desk.client.post("/maintenance/999999/end", data={"csrf": csrf})
    assert missing.status == 404


async def test_the_create_form_makes_a_window_under_the_signed_in_person(desk: Console) -> None:
    await desk.sign_in("alice")
    csrf = await desk.csrf("/maintenance")
    form = {"csrf": csrf, "host": "db*", "service": "", "duration": "1h", "comment": "patching", "by": "mallory"}
    answer = await desk.client.post("/maintenance", data=form, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    weekly = {"csrf": csrf, "source": "zabbix", "recurrence": "sun 02:00-04:00", "comment": "backups"}
    assert (await desk.client.post("/maintenance", data=weekly, allow_redirects=False)).status == 303
    until = {"csrf": csrf, "all": "1", "ends_at": "2030-01-01T00:00", "comment": "freeze"}
    assert (await desk.client.post("/maintenance", data=until, allow_redirects=False)).status == 303
    windows = {w.comment: w for w in await MaintenanceWindows(desk.store).list()}
    assert dict(windows["patching"].match) == {"host": "db*"} and windows["patching"].created_by == "alice"
    assert windows["backups"].recurrence is not None and windows["backups"].ends_at is None
    assert windows["freeze"].match == {} and windows["freeze"].ends_at.isoformat() == "2030-01-01T00:00:00+00:00"  # type: ignore[union-attr]
    page = await (await desk.client.get("/maintenance")).text()
    assert "sun 02:00–04:00" in section(page, "upcoming") and "<strong>everything</strong>" in page


async def test_a_bad_window_form_is_422_naming_the_field_and_keeps_what_was_typed(desk: Console) -> None:
    await desk.sign_in("alice")
    csrf = await desk.csrf("/maintenance")
    cases = [
        ({"host": "db01", "duration": "soon", "comment": "x"}, "duration: "),
        ({"duration": "2h", "comment": "x"}, "match: an empty match silences every alert"),
        ({"host": "db01", "ends_at": "2001-01-01T00:00", "comment": "x"}, "ends_at: ends before it starts"),
        ({"host": "db01", "ends_at": "tomorrow", "comment": "x"}, "ends_at: not a date and time"),
        ({"host": "db01", "duration": "2h", "recurrence": "someday", "comment": "x"}, "recurrence: "),
        ({"host": "db01", "duration": "2h", "comment": " "}, "comment: "),
        ({"host": "x" * 256, "duration": "2h", "comment": "x"}, "host: "),
    ]
    for data, expected in cases:
        answer = await desk.client.post("/maintenance", data={"csrf": csrf, **data})
        text = await answer.text()
        assert answer.status == 422 and expected in text, (data, text[:3000])
    kept = await desk.client.post(
        "/maintenance", data={"csrf": csrf, "host": "db01", "duration": "soon", "comment": "x"}
    )
    assert 'id="w-host" name="host" maxlength="255" value="db01"' in await kept.text()
    assert await MaintenanceWindows(desk.store).list() == []


async def test_a_viewer_sees_the_windows_but_no_forms_and_a_forged_post_is_403(desk: Console) -> None:
    ticket_id = await desk.ticket("web01")
    await desk.sign_in("alice")
    alice_csrf = await desk.csrf("/maintenance")
    created = await desk.client.post(
        "/maintenance", data={"csrf": alice_csrf, "host": "db01", "duration": "2h", "comment": "kernel"}
    )
    assert created.status == 200  # followed the redirect to the page
    [window] = await MaintenanceWindows(desk.store).list()
    await desk.client.post("/logout", data={"csrf": alice_csrf})
    await desk.sign_in("vera")
    page = await (await desk.client.get("/maintenance")).text()
    assert "kernel" in row(page, window.id) and '<form method="post" action="/maintenance' not in page
    assert "Create window" not in page and "End now" not in page
    ticket_page = await (await desk.client.get(f"/tickets/{ticket_id}")).text()
    assert "Silence this host" not in ticket_page
    csrf = field(page, "csrf")  # the sign-out form's token: a viewer holds a valid one
    forged = [
        ("/maintenance", {"csrf": csrf, "host": "*", "duration": "2h", "comment": "x"}),
        (f"/maintenance/{window.id}/end", {"csrf": csrf}),
        (f"/tickets/{ticket_id}/silence", {"csrf": csrf}),
    ]
    for path, data in forged:
        answer = await desk.client.post(path, data=data)
        assert answer.status == 403 and "viewer" in await answer.text(), path
    [still] = await MaintenanceWindows(desk.store).list()
    assert still.ended_at is None


async def test_window_forms_without_the_csrf_token_are_403_and_change_nothing(desk: Console) -> None:
    ticket_id = await desk.ticket("web01")
    await desk.sign_in("alice")
    for path in ("/maintenance", f"/tickets/{ticket_id}/silence"):
        for data in ({"host": "db01", "duration": "2h", "comment": "x"}, {"csrf": "forged", "comment": "x"}):
            answer = await desk.client.post(path, data=data)
            assert answer.status == 403 and "CSRF" in await answer.text()
    assert await MaintenanceWindows(desk.store).list() == []
    page = await (await desk.client.get("/tickets")).text()
    assert '<a href="/maintenance">Maintenance</a>' in page
