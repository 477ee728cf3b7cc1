"""The web console through a real aiohttp server, on SQLite and PostgreSQL: sign-in, sessions, CSRF, roles.

What a person notices: where a sign-in sends them, what a refused form says, that nothing changed after a refusal,
who the history names. The browser-level flows (JavaScript, rendering) are in test_console_browser.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import update

from normalizers.schema import Alert, Kind, Severity, Source, TicketCommand
from tests.conftest import Clock
from ticketstore import tables
from ticketstore.accounts import Accounts
from ticketstore.api.queries import TicketQueries
from ticketstore.console.auth import COOKIE, ConsoleConfig
from ticketstore.console.dashboard import Dashboard
from ticketstore.console.pages import console
from ticketstore.console.queue import due
from ticketstore.db import Engines, create_engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy
from ticketstore.store import TicketStore

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery"


@dataclass
class Console:
    client: Client
    store: TicketStore
    accounts: Accounts
    queries: TicketQueries
    clock: Clock

    async def sign_in(self, name: str, password: str = PASSWORD, next_page: str = "", status: int = 303) -> str:
        """Sign in through the form; the page it redirects to."""
        form = await self.client.get("/login")
        csrf = field(await form.text(), "csrf")
        answer = await self.client.post(
            "/login",
            data={"username": name, "password": password, "csrf": csrf, "next": next_page},
            allow_redirects=False,
        )
        assert answer.status == status, await answer.text()
        return answer.headers.get("Location", await answer.text())

    async def csrf(self, path: str = "/tickets") -> str:
        answer = await self.client.get(path)
        assert answer.status == 200, await answer.text()
        return field(await answer.text(), "csrf")

    async def ticket(self, host: str = "web01", output: str = "HTTP CRITICAL") -> int:
        alert = Alert(
            id=str(uuid.uuid4()),
            source=Source.NAGIOS,
            dedup_key=f"nagios:{host}/HTTP",
            kind=Kind.PROBLEM,
            severity=Severity.CRITICAL,
            state_ok=False,
            host=host,
            service="HTTP",
            title=f"HTTP on {host} is CRITICAL",
            description=output,
            received_at=self.clock(),
        )
        [applied] = await self.store.apply_batch([TicketCommand.single(alert)])
        assert applied.ticket_id is not None
        return applied.ticket_id


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


async def make_console(
    engines: Engines,
    clock: Clock,
    aiohttp_client: AiohttpClient,
    config: ConsoleConfig | None = None,
    policy: Policy | None = None,
) -> Console:
    config = config or ConsoleConfig()
    store = TicketStore(engines, Lifecycle(policy or Policy()), now=clock, windows_every=0)
    accounts = Accounts(engines, now=clock, session_hours=config.session_hours)
    app = web.Application()
    console(app, store, engines, accounts, config)
    await accounts.add("alice", PASSWORD, "operator")
    await accounts.add("vera", PASSWORD, "viewer")
    return Console(await aiohttp_client(app), store, accounts, TicketQueries(engines), clock)


@pytest.fixture
async def desk(engines: Engines, clock: Clock, aiohttp_client: AiohttpClient) -> Console:
    return await make_console(engines, clock, aiohttp_client)


async def test_root_sends_strangers_to_sign_in_and_the_signed_in_to_the_queue(desk: Console) -> None:
    answer = await desk.client.get("/", allow_redirects=False)
    assert answer.headers["Location"] == "/login"
    ticket = await desk.client.get("/tickets/1?x=1", allow_redirects=False)
    assert ticket.status == 303 and ticket.headers["Location"] == "/login?next=%2Ftickets%2F1%3Fx%3D1"
    await desk.sign_in("alice")
    answer = await desk.client.get("/", allow_redirects=False)
    assert answer.headers["Location"] == "/tickets"


async def test_sign_in_sets_a_strict_http_only_cookie_and_goes_to_the_page_asked_for(desk: Console) -> None:
    form = await desk.client.get("/login")
    html = await form.text()
    assert '<input id="username" name="username" autocomplete="username"' in html
    assert 'name="password" type="password" autocomplete="current-password"' in html
    answer = await desk.client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf": field(html, "csrf"), "next": "/dashboard?days=7"},
        allow_redirects=False,
    )
    assert answer.status == 303 and answer.headers["Location"] == "/dashboard?days=7"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # no https public URL
    page = await desk.client.get("/tickets")
    assert page.status == 200 and "alice" in await page.text()


async def test_a_wrong_password_or_name_says_only_that(desk: Console) -> None:
    for name, password in (("alice", "not the password"), ("nobody", PASSWORD)):
        page = await desk.sign_in(name, password, status=401)
        assert "Wrong name or password." in page
    assert (await desk.client.get("/tickets", allow_redirects=False)).status == 303


async def test_the_sign_in_form_without_its_token_is_refused(desk: Console) -> None:
    answer = await desk.client.post("/login", data={"username": "alice", "password": PASSWORD}, allow_redirects=False)
    assert answer.status == 403
    assert (await desk.client.get("/tickets", allow_redirects=False)).status == 303


async def test_failed_sign_ins_are_slowed_then_allowed_again(desk: Console) -> None:
    for _ in range(3):
        await desk.sign_in("alice", "guess", status=401)
    page = await desk.sign_in("alice", PASSWORD, status=429)  # even the right password waits now
    assert "try again in 1 s" in page
    desk.clock.advance(seconds=1)
    await desk.sign_in("alice", "guess", status=401)  # fourth failure: 2 s
    assert "try again in 2 s" in await desk.sign_in("alice", PASSWORD, status=429)
    desk.clock.advance(seconds=2)
    assert await desk.sign_in("alice") == "/tickets"


async def test_failures_are_counted_per_address_across_names(desk: Console) -> None:
    for name in ("bob", "carol", "dave"):
        await desk.sign_in(name, "guess", status=401)
    assert "try again" in await desk.sign_in("alice", PASSWORD, status=429)  # same client address
    desk.clock.advance(hours=1, seconds=1)  # an hour without a failure: forgotten, not just waited out
    await desk.sign_in("erin", "guess", status=401)
    assert await desk.sign_in("alice") == "/tickets"


@pytest.mark.parametrize(
    "asked",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "evil", "/\t/evil"],
)
async def test_sign_in_never_redirects_off_the_site(desk: Console, asked: str) -> None:
    assert await desk.sign_in("alice", next_page=asked) == "/tickets"


async def test_an_action_without_the_csrf_token_is_403_and_changes_nothing(desk: Console) -> None:
    ticket_id = await desk.ticket()
    await desk.sign_in("alice")
    for data in ({}, {"csrf": "forged"}):
        answer = await desk.client.post(f"/tickets/{ticket_id}/acknowledge", data=data, allow_redirects=False)
        assert answer.status == 403 and "CSRF" in await answer.text()
    ticket = await desk.queries.get(ticket_id)
    assert ticket is not None and ticket.acknowledged_by is None and ticket.status == "open"


async def test_actions_are_recorded_under_the_signed_in_person_whatever_the_form_says(desk: Console) -> None:
    ticket_id = await desk.ticket()
    await desk.sign_in("alice")
    csrf = await desk.csrf(f"/tickets/{ticket_id}")
    path = f"/tickets/{ticket_id}"
    for action, data in (
        ("acknowledge", {"by": "mallory"}),
        ("assign", {"group": "network", "assignee": "bob"}),
        ("comment", {"text": "looking at the <b>load balancer</b>", "by": "mallory"}),
        ("resolve", {}),
    ):
        answer = await desk.client.post(f"{path}/{action}", data={"csrf": csrf, **data}, allow_redirects=False)
        assert answer.status == 303 and answer.headers["Location"] == path, await answer.text()
    ticket = await desk.queries.get(ticket_id)
    assert ticket is not None and ticket.status == "resolved" and ticket.assigned_group == "network"
    assert ticket.assignee == "bob" and ticket.acknowledged_by == "alice"
    actors = {h.kind: h.actor for h in ticket.history or []}
    assert actors["acknowledged"] == actors["assigned"] == actors["comment"] == actors["resolved"] == "alice"
    page = await (await desk.client.get(path)).text()
    assert "looking at the &lt;b&gt;load balancer&lt;/b&gt;" in page


async def test_a_conflict_is_shown_as_a_sentence(desk: Console) -> None:
    ticket_id = await desk.ticket()
    await desk.sign_in("alice")
    csrf = await desk.csrf(f"/tickets/{ticket_id}")
    await desk.client.post(f"/tickets/{ticket_id}/close", data={"csrf": csrf})
    answer = await desk.client.post(f"/tickets/{ticket_id}/reopen", data={"csrf": csrf})
    assert answer.status == 409
    assert "Not done: a closed ticket cannot change status." in await answer.text()


async def test_a_form_missing_a_field_is_422_naming_it(desk: Console) -> None:
    ticket_id = await desk.ticket()
    await desk.sign_in("alice")
    csrf = await desk.csrf()
    answer = await desk.client.post(f"/tickets/{ticket_id}/comment", data={"csrf": csrf, "text": "  "})
    assert answer.status == 422 and "text: required" in await answer.text()
    bad = await desk.client.get("/tickets?severity=apocalyptic")
    assert bad.status == 422 and "severity: unknown value" in await bad.text()
    ticket = await desk.queries.get(ticket_id)
    assert ticket is not None and [h.kind for h in ticket.history or []] == ["opened"]


async def test_a_viewer_sees_no_action_forms_and_a_forged_action_is_403(desk: Console) -> None:
    ticket_id = await desk.ticket()
    await desk.sign_in("vera")
    page = await (await desk.client.get(f"/tickets/{ticket_id}")).text()
    assert ">Acknowledge</button>" not in page and f"/tickets/{ticket_id}/" not in page
    csrf = field(page, "csrf")  # the sign-out form's token: a viewer holds a valid one
    answer = await desk.client.post(f"/tickets/{ticket_id}/acknowledge", data={"csrf": csrf})
    assert answer.status == 403 and "viewer" in await answer.text()
    ticket = await desk.queries.get(ticket_id)
    assert ticket is not None and ticket.acknowledged_by is None


async def test_sign_out_ends_the_session_on_the_server(desk: Console) -> None:
    await desk.sign_in("alice")
    token = desk.client.session.cookie_jar.filter_cookies(desk.client.make_url("/"))[COOKIE].value
    csrf = await desk.csrf()
    answer = await desk.client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/login"
    assert await desk.accounts.session(token) is None
    replay = await desk.client.get("/tickets", cookies={COOKIE: token}, allow_redirects=False)
    assert replay.status == 303  # the old cookie, sent again, signs nobody in


async def test_sessions_expire_and_removal_or_a_new_password_ends_them(desk: Console) -> None:
    await desk.sign_in("alice")
    desk.clock.advance(hours=12, seconds=1)
    assert (await desk.client.get("/tickets", allow_redirects=False)).status == 303
    await desk.sign_in("alice")
    await desk.accounts.set_password("alice", "a brand new password")
    assert (await desk.client.get("/tickets", allow_redirects=False)).status == 303
    await desk.sign_in("vera")
    await desk.accounts.remove("vera")
    assert (await desk.client.get("/tickets", allow_redirects=False)).status == 303


async def test_pages_carry_the_security_headers(desk: Console) -> None:
    for path in ("/login", "/static/console.js"):
        answer = await desk.client.get(path)
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_queue_filters_and_its_csv_holds_the_same_tickets(desk: Console) -> None:
    await desk.ticket("web01")
    await desk.ticket("=cmd|' /C calc'!A0")
    await desk.sign_in("alice")
    page = await (await desk.client.get("/tickets?q=web01")).text()
    assert "web01" in page and "calc" not in page
    csv = await (await desk.client.get("/tickets.csv?source=nagios")).text()
    lines = csv.strip().splitlines()
    assert lines[0].startswith("number,status,priority") and len(lines) == 3
    assert "'=cmd|" in csv  # a spreadsheet shows it, never runs it
    only = await (await desk.client.get("/tickets.csv?q=web01")).text()
    assert len(only.strip().splitlines()) == 2


async def urgent_pages(desk: Console, first: str) -> tuple[list[int], str | None]:
    """The tickets of one queue page, in the order shown, and its Next link."""
    page = await (await desk.client.get(first)).text()
    following = re.search(r'<a rel="next" href="([^"]+)"', page)
    return [int(n) for n in re.findall(r'data-ticket="(\d+)"', page)], following and following.group(1).replace(
        "&amp;", "&"
    )


async def test_most_urgent_pages_skip_no_ticket_when_one_on_an_earlier_page_is_acknowledged(desk: Console) -> None:
    """An operator works down "most urgent" page by page, acknowledging as they go. Every ticket shows up; the
    acknowledged one (its deadline is now the later resolve-by) may show again further down; none is skipped."""
    levels = [Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.WARNING, Severity.INFO]  # info: no deadline
    opened: list[int] = []
    for minute in range(12):  # ten tickets a minute: equal deadlines within a minute, the newest first among them
        batch = [
            Alert(
                id=str(uuid.uuid4()),
                source=Source.NAGIOS,
                dedup_key=f"nagios:host{minute:02d}{n}/DISK",
                kind=Kind.PROBLEM,
                severity=levels[(minute + n) % len(levels)],
                host=f"host{minute:02d}{n}",
                service="DISK",
                title="DISK",
                received_at=desk.clock(),
            )
            for n in range(10)
        ]
        applied = await desk.store.apply_batch([TicketCommand.single(x) for x in batch])
        opened += [a.ticket_id for a in applied if a.ticket_id is not None]
        desk.clock.advance(minutes=1)
    assert len(opened) == 120
    await desk.sign_in("alice")

    page1, following = await urgent_pages(desk, "/tickets?sort=urgent")
    everything = (await desk.queries.list(limit=500)).tickets
    order = sorted(everything, key=lambda x: (x.priority, due(x) is None, due(x) or desk.clock(), -x.id))
    assert page1 == [x.id for x in order[:50]]  # priority, then the nearest deadline, then the newest
    moved = page1[-2]  # a P3 answered within 4 h: acknowledged, its deadline is resolve-by, 24 h: now on page 2
    assert order[48].id == moved and order[48].priority == order[50].priority == "P3"
    csrf = await desk.csrf(f"/tickets/{moved}")
    answer = await desk.client.post(f"/tickets/{moved}/acknowledge", data={"csrf": csrf}, allow_redirects=False)
    assert answer.status == 303

    seen = list(page1)
    while following:
        shown, following = await urgent_pages(desk, following)
        seen += shown
    assert sorted(set(seen)) == sorted(opened)  # none skipped
    assert [n for n in seen if seen.count(n) > 1] in ([], [moved, moved])  # only the one that moved, if any
    assert len(seen) <= len(opened) + 1
    for wrong in ("17", "P3.x.17", "P3..17", "P3.1.1.1"):
        refused = await desk.client.get(f"/tickets?sort=urgent&cursor={wrong}")
        assert 400 <= refused.status < 500 and "cursor" in await refused.text()


async def test_the_change_cursor_moves_when_a_ticket_opens_or_changes(desk: Console) -> None:
    await desk.sign_in("alice")
    first = (await (await desk.client.get("/tickets/changes")).json())["cursor"]
    ticket_id = await desk.ticket()
    second = (await (await desk.client.get("/tickets/changes")).json())["cursor"]
    desk.clock.advance(seconds=30)
    assert await desk.ticket() == ticket_id  # a repeat: no history entry, a later last_seen
    third = (await (await desk.client.get("/tickets/changes")).json())["cursor"]
    assert len({first, second, third}) == 3


async def test_a_proxy_user_is_trusted_only_from_the_proxy_networks(
    engines: Engines, clock: Clock, aiohttp_client: AiohttpClient
) -> None:
    trusted = ConsoleConfig(
        proxy_header="X-Forwarded-User", proxy_networks=(ip_network("127.0.0.0/8"),), proxy_role="viewer"
    )
    desk = await make_console(engines, clock, aiohttp_client, trusted)
    page = await desk.client.get("/tickets", headers={"X-Forwarded-User": "sso-sam"})
    assert page.status == 200 and "sso-sam <small>(viewer)</small>" in await page.text()
    page = await desk.client.get("/tickets", headers={"X-Forwarded-User": "alice"}, cookies={COOKIE: "x"})
    assert "alice <small>(operator)</small>" in await page.text()  # a known person keeps their role

    untrusted = ConsoleConfig(proxy_header="X-Forwarded-User", proxy_networks=(ip_network("10.0.0.0/8"),))
    other = await make_console_without_accounts(engines, clock, aiohttp_client, untrusted)
    answer = await other.get("/tickets", headers={"X-Forwarded-User": "alice"}, allow_redirects=False)
    assert answer.status == 303


async def make_console_without_accounts(
    engines: Engines, clock: Clock, aiohttp_client: AiohttpClient, config: ConsoleConfig
) -> Client:
    store = TicketStore(engines, Lifecycle(Policy()), now=clock)
    app = web.Application()
    console(app, store, engines, Accounts(engines, now=clock), config)
    return await aiohttp_client(app)


async def test_the_dashboard_counts_by_the_database(desk: Console) -> None:
    first = await desk.ticket("web01")
    await desk.ticket("web02")
    desk.clock.advance(minutes=10)
    await desk.sign_in("alice")
    csrf = await desk.csrf()
    await desk.client.post(f"/tickets/{first}/acknowledge", data={"csrf": csrf})
    desk.clock.advance(minutes=20)
    await desk.client.post(f"/tickets/{first}/resolve", data={"csrf": csrf})
    page = await (await desk.client.get("/dashboard")).text()
    assert '<dd data-stat="total">2</dd>' in page and '<dd data-stat="resolved">1</dd>' in page
    assert 'data-stat="mtta_seconds" data-value="600.0"' in page
    assert "2026-03-14 · opened: 2</title>" in page and "2026-03-14 · resolved: 1</title>" in page
    assert "2026-03-14 · MTTA: 10 min</title>" in page and "2026-03-14 · MTTR: 30 min</title>" in page
    assert "critical · open: 1</title>" in page
    assert "2026-03-09 · met: 2</title>" in page  # the week of Saturday 14 March, by its Monday
    assert "2026-03-14 03:00 · nagios: 2</title>" in page  # alerts per source per hour
    assert '<td class="wrap">web02</td><td class="wrap">HTTP</td><td>1</td><td>1</td>' in page
    assert '<tr><td class="wrap">web01</td><td>1</td><td>1</td></tr>' in page  # noisiest hosts
    assert (await desk.client.get("/dashboard?days=5")).status == 422


def users_cli(workdir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real `alertdesk users …` command, its password (if any) on stdin as a script gives it."""
    env = {**os.environ, "ALERTDESK_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'desk.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "alertdesk.cli", "users", *args],
        input=stdin,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_users_command_adds_lists_changes_and_removes_people(tmp_path: Path) -> None:
    assert users_cli(tmp_path, "add", "alice", stdin=PASSWORD + "\n").stdout == "added alice (operator)\n"
    assert users_cli(tmp_path, "add", "vera", "--role", "viewer", stdin=PASSWORD + "\n").returncode == 0
    taken = users_cli(tmp_path, "add", "alice", stdin=PASSWORD + "\n")
    assert taken.returncode == 1 and "already a person named 'alice'" in taken.stderr
    short = users_cli(tmp_path, "add", "bob", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    listed = users_cli(tmp_path, "list").stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [["alice", "operator"], ["vera", "viewer"]]

    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'desk.db'}")
    try:
        accounts = Accounts(engines, now=Clock())
        signed_in = await accounts.sign_in("alice", PASSWORD, "192.0.2.1")
        assert isinstance(signed_in, tuple)
        assert users_cli(tmp_path, "passwd", "alice", stdin="another good one\n").returncode == 0
        assert await accounts.session(signed_in[0]) is None  # a new password ends the old sessions
        assert await accounts.sign_in("alice", PASSWORD, "192.0.2.1") is None
        assert isinstance(await accounts.sign_in("alice", "another good one", "192.0.2.1"), tuple)
        vera = await accounts.sign_in("vera", PASSWORD, "192.0.2.2")
        assert isinstance(vera, tuple)
        assert users_cli(tmp_path, "remove", "vera").stdout == "removed vera; their sessions ended\n"
        assert await accounts.session(vera[0]) is None
    finally:
        await engines.dispose()
    assert users_cli(tmp_path, "remove", "vera").returncode == 1
    assert [line.split("\t")[0] for line in users_cli(tmp_path, "list").stdout.splitlines()] == ["alice"]


async def test_an_unreachable_database_is_a_503_page_not_a_stack_trace(aiohttp_client: AiohttpClient) -> None:
    engines = create_engines("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")  # nothing listens on port 9
    clock = Clock()
    try:
        client = await make_console_without_accounts(engines, clock, aiohttp_client, ConsoleConfig())
        page = await client.get("/tickets", cookies={COOKIE: "some-session"})
        assert page.status == 503 and page.headers["Retry-After"] == "5"
        assert "cannot be reached now" in await page.text()
        csrf = field(await (await client.get("/login")).text(), "csrf")
        answer = await client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": csrf})
        assert answer.status == 503
    finally:
        await engines.dispose()


async def test_behind_an_https_public_url_the_session_cookie_is_secure(
    engines: Engines, clock: Clock, aiohttp_client: AiohttpClient
) -> None:
    desk = await make_console(engines, clock, aiohttp_client, ConsoleConfig(public_url="https://desk.example.net"))
    form = await desk.client.get("/login")
    answer = await desk.client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf": field(await form.text(), "csrf")},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert "Secure" in answer.headers["Set-Cookie"] and "HttpOnly" in answer.headers["Set-Cookie"]


TRACKED = Policy.model_validate(
    {
        "trackers": {
            "snow": {"type": "servicenow", "url": "https://acme.service-now.com/", "user": "a", "password_env": "X"},
            "jira": {"type": "jira", "url": "https://acme.atlassian.net", "token_env": "X", "project": "OPS"},
            "zd": {"type": "zendesk", "url": "https://acme.zendesk.com", "user": "a@b.c", "token_env": "X"},
        },
        "routes": [{"match": {"host": "web*"}, "runbook": "https://wiki.example.com/rb/{host}/{service}"}],
    }
)


async def test_the_ticket_page_links_the_runbook_and_each_trackers_record(
    engines: Engines, clock: Clock, aiohttp_client: AiohttpClient
) -> None:
    desk = await make_console(engines, clock, aiohttp_client, policy=TRACKED)
    ticket_id = await desk.ticket("web01")
    refs = {"snow": "INC0012345", "jira": "OPS-123", "zd": "4711", "gone": "X-1"}
    await desk.store.run(lambda conn: conn.execute(update(tables.tickets).values(external_refs=refs)))
    await desk.sign_in("vera")
    page = await (await desk.client.get(f"/tickets/{ticket_id}")).text()
    assert (
        '<a href="https://wiki.example.com/rb/web01/HTTP" target="_blank" rel="noopener noreferrer">'
        "https://wiki.example.com/rb/web01/HTTP</a>" in page
    )
    snow = "https://acme.service-now.com/nav_to.do?uri=incident.do%3Fsysparm_query%3Dnumber%3DINC0012345"
    assert f'snow: <a href="{snow}" target="_blank" rel="noopener noreferrer">INC0012345</a>' in page
    assert 'jira: <a href="https://acme.atlassian.net/browse/OPS-123" target="_blank"' in page
    assert 'zd: <a href="https://acme.zendesk.com/agent/tickets/4711" target="_blank"' in page
    assert '<span class="record">gone: X-1</span>' in page  # a tracker no longer in the policy: the key as text


async def test_a_javascript_runbook_or_remote_key_never_becomes_a_link(
    engines: Engines, clock: Clock, aiohttp_client: AiohttpClient
) -> None:
    desk = await make_console(engines, clock, aiohttp_client, policy=TRACKED)
    ticket_id = await desk.ticket("db01")  # no route: no runbook
    await desk.sign_in("alice")
    page = await (await desk.client.get(f"/tickets/{ticket_id}")).text()
    assert '<dd id="runbook">-</dd>' in page and '<dd id="trackers">-</dd>' in page
    hostile = {"runbook_url": "javascript:alert(1)", "external_refs": {"jira": "javascript:alert(2)"}}
    await desk.store.run(lambda conn: conn.execute(update(tables.tickets).values(**hostile)))
    page = await (await desk.client.get(f"/tickets/{ticket_id}")).text()
    assert '<dd id="runbook">javascript:alert(1)</dd>' in page
    assert '<span class="record">jira: javascript:alert(2)</span>' in page
    assert 'href="javascript' not in page


async def test_the_dashboards_period_figures_read_covering_indexes_on_sqlite(tmp_path: Path) -> None:
    """No row of the wide tickets table is read for the 30-day figures: the page stays fast with many tickets."""
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}")
    try:
        await upgrade(engines.write)
        statements = Dashboard(engines).statements(datetime(2026, 1, 1, tzinfo=UTC))
        async with engines.read.connect() as conn:
            for name in ("days", "resolved", "noisiest", "group"):
                sql = str(statements[name].compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
                plan = " | ".join(str(r[-1]) for r in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
                assert "USING COVERING INDEX" in plan and "SCAN tickets" not in plan, (name, plan)
    finally:
        await engines.dispose()
