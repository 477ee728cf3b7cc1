"""The console's pages and forms: routes, parsing, and turning refusals into pages a person can read.

Each handler asks `Gate.who` for the person first: nobody → the sign-in page (403 for a POST). Actions go through
`TicketStore.act` with the signed-in person as the actor; a 409 comes back as a sentence on the ticket page.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import hdrs, web

from normalizers.schema import Severity, Source, Unavailable
from ticketstore.accounts import Accounts, Session
from ticketstore.actions import Conflict, TicketNotFound
from ticketstore.api.queries import TicketQueries
from ticketstore.console import charts
from ticketstore.console.auth import NEW_SESSION, ConsoleConfig, Forbidden, Gate, login_url, redirect
from ticketstore.console.dashboard import PERIODS, Dashboard
from ticketstore.console.forms import CSV_COLUMNS, Invalid, action, csv_row, queue_parameters
from ticketstore.console.links import http_link, remote_records
from ticketstore.console.maintenance import FORM_FIELDS, WindowPage
from ticketstore.console.queue import SORTS, Cursor, Queue, due
from ticketstore.db import Engines
from ticketstore.maintenance import WindowNotFound
from ticketstore.store import TicketStore
from ticketstore.ticket import STATUSES
from ticketstore.windows import MaintenanceWindows, WindowAlreadyEnded

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
Page = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TICKET = r"/tickets/{id:\d{1,18}}"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def console(
    app: web.Application, store: TicketStore, engines: Engines, accounts: Accounts, config: ConsoleConfig
) -> None:
    """Add the console's routes, templates and response headers to `app` (the one serving /api)."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    env.globals.update(due=due, link=http_link)
    env.filters["iso"] = lambda at: at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else ""
    pages = _Pages(store, engines, accounts, config)
    static = app.router.add_static("/static", HERE / "static", append_version=True)
    env.globals["static"] = lambda name: str(static.url_for(filename=name))
    app.on_response_prepare.append(pages.finish)
    app.add_routes(
        [
            web.get("/", _reachable(pages.root)),
            web.get("/login", _reachable(pages.gate.login_page)),
            web.post("/login", _reachable(pages.gate.login)),
            web.post("/logout", _reachable(pages.gate.logout)),
            web.get("/tickets", pages.signed_in(pages.queue)),
            web.get("/tickets.csv", pages.signed_in(pages.csv)),
            web.get("/tickets/changes", pages.signed_in(pages.changes)),
            web.get(_TICKET, pages.signed_in(pages.ticket)),
            web.post(_TICKET + "/silence", pages.signed_in(pages.silence)),
            web.post(_TICKET + "/{action}", pages.signed_in(pages.act)),
            web.get("/dashboard", pages.signed_in(pages.dashboard)),
            web.get("/maintenance", pages.signed_in(pages.maintenance)),
            web.post("/maintenance", pages.signed_in(pages.create_window)),
            web.post(r"/maintenance/{id:\d{1,18}}/end", pages.signed_in(pages.end_window)),
        ]
    )


def _reachable(handler: Handler) -> Handler:
    """The database out of reach: a 503 page saying so (with Retry-After), not a stack trace."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Unavailable:
            logger.warning("console answered 503 on %s %s", request.method, request.path)
            response = _message(request, None, "The ticket database cannot be reached now; try again soon.", 503)
            response.headers[hdrs.RETRY_AFTER] = "5"
            return response

    return run


class _Pages:
    def __init__(self, store: TicketStore, engines: Engines, accounts: Accounts, config: ConsoleConfig) -> None:
        self.gate = Gate(accounts, config)
        self._store = store
        self._queries = TicketQueries(engines)
        self._queue = Queue(engines)
        self._dashboard = Dashboard(engines)
        self._windows = WindowPage(MaintenanceWindows(store))

    async def finish(self, request: web.Request, response: web.StreamResponse) -> None:
        """Security headers on every console answer; a proxy user's new session cookie."""
        if request.path.startswith(("/api", "/webhooks", "/metrics", "/healthz", "/readyz")):
            return
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.path.startswith("/static"):
            response.headers[hdrs.CACHE_CONTROL] = "no-store"
        token = request.get(NEW_SESSION)
        if token:
            self.gate.set_cookie(response, token)

    def signed_in(self, page: Page) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            session = await self.gate.who(request)
            if session is None:
                if request.method == "GET" and not request.path.endswith("/changes"):
                    return redirect(login_url(request))
                return _message(request, None, "Please sign in first.", 403)
            try:
                return await page(request, session)
            except Forbidden as exc:
                return _message(request, session, str(exc), 403)
            except Invalid as exc:
                return _message(request, session, str(exc), 422)
            except TicketNotFound:
                return _message(request, session, "There is no such ticket.", 404)
            except WindowNotFound:
                return _message(request, session, "There is no such maintenance window.", 404)
            except WindowAlreadyEnded as exc:
                return _message(request, session, f"Not done: {exc}.", 409)

        return _reachable(run)

    async def root(self, request: web.Request) -> web.StreamResponse:
        return redirect("/tickets" if await self.gate.who(request) is not None else "/login")

    # --- the queue ----------------------------------------------------------------------------------------

    async def queue(self, request: web.Request, session: Session) -> web.StreamResponse:
        filters, sort, cursor = queue_parameters(request)
        page = await self._queue.page(filters, sort, cursor)
        query = {k: v for k, v in request.query.items() if k != "cursor" and v}
        context = {
            "session": session,
            "tickets": page.tickets,
            "filters": filters,
            "sort": sort,
            "sorts": SORTS,
            "statuses": STATUSES,
            "severities": [s.value for s in Severity],
            "sources": [s.value for s in Source],
            "csv_url": "/tickets.csv?" + urlencode(query),
            "next_url": None
            if page.next_cursor is None
            else "/tickets?" + urlencode({**query, "cursor": page.next_cursor}),
            "changes": await self._queue.changes(),
            "now": self._store.now(),
        }
        template = "_queue.html" if request.headers.get("X-Console-Fragment") == "queue" else "tickets.html"
        return aiohttp_jinja2.render_template(template, request, context)

    async def changes(self, request: web.Request, session: Session) -> web.StreamResponse:
        return web.json_response({"cursor": await self._queue.changes()})

    async def csv(self, request: web.Request, session: Session) -> web.StreamResponse:
        """Every ticket of the filter, newest first, written page by page (no limit, bounded memory)."""
        filters, _, _ = queue_parameters(request)
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: "text/csv; charset=utf-8",
                hdrs.CONTENT_DISPOSITION: 'attachment; filename="tickets.csv"',
            }
        )
        await response.prepare(request)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        cursor: Cursor | None = None
        while True:
            page = await self._queue.page(filters, "newest", cursor, limit=500)
            for ticket in page.tickets:
                writer.writerow(csv_row(ticket))
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        await response.write_eof()
        return response

    # --- one ticket ---------------------------------------------------------------------------------------

    async def ticket(self, request: web.Request, session: Session) -> web.StreamResponse:
        return await self._ticket_page(request, session, None, 200)

    async def _ticket_page(
        self, request: web.Request, session: Session, error: str | None, status: int
    ) -> web.Response:
        ticket_id = int(request.match_info["id"])
        ticket = await self._queries.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        before, after = await self._queue.neighbours(ticket)
        context = {
            "session": session,
            "ticket": ticket,
            "before": before,
            "after": after,
            "error": error,
            "records": remote_records(ticket.external_refs, self._store.policy.trackers),
            "statuses": ("open", "in_progress", "waiting"),
            "now": self._store.now(),
        }
        return aiohttp_jinja2.render_template("ticket.html", request, context, status=status)

    async def act(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await self.gate.form(request, session)
        name = request.match_info["action"]
        wanted = action(name, session.user, form)
        ticket_id = int(request.match_info["id"])
        try:
            await self._store.act(ticket_id, wanted)
        except Conflict as exc:
            return await self._ticket_page(request, session, f"Not done: {exc}.", 409)
        return redirect(f"/tickets/{ticket_id}")

    async def silence(self, request: web.Request, session: Session) -> web.StreamResponse:
        """ "Silence this host for 2 h": a window on the ticket's host and source, then the windows page."""
        await self.gate.form(request, session)
        ticket_id = int(request.match_info["id"])
        ticket = await self._queries.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        window = await self._windows.silence(ticket, session.user)
        return redirect(f"/maintenance#window-{window.id}")

    # --- maintenance windows ------------------------------------------------------------------------------

    async def maintenance(self, request: web.Request, session: Session) -> web.StreamResponse:
        return await self._maintenance_page(request, session, {}, None, 200)

    async def _maintenance_page(
        self, request: web.Request, session: Session, form: Mapping[str, str], error: str | None, status: int
    ) -> web.Response:
        context = {
            "session": session,
            "windows": await self._windows.listing(self._store.now()),
            "form": form,
            "error": error,
        }
        return aiohttp_jinja2.render_template("maintenance.html", request, context, status=status)

    async def create_window(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await self.gate.form(request, session)
        try:
            window = await self._windows.create(form, session.user)
        except Invalid as exc:  # the page again, with what was typed and the field at fault
            typed = {k: v for k in FORM_FIELDS if isinstance(v := form.get(k), str)}
            return await self._maintenance_page(request, session, typed, str(exc), 422)
        return redirect(f"/maintenance#window-{window.id}")

    async def end_window(self, request: web.Request, session: Session) -> web.StreamResponse:
        await self.gate.form(request, session)
        await self._windows.end(int(request.match_info["id"]), session.user)
        return redirect("/maintenance")

    # --- the dashboard ------------------------------------------------------------------------------------

    async def dashboard(self, request: web.Request, session: Session) -> web.StreamResponse:
        raw = request.query.get("days", "30")
        if not raw.isdigit() or int(raw) not in PERIODS:
            raise Invalid("days", f"choose one of {', '.join(map(str, PERIODS))}")
        days, now = int(raw), self._store.now()
        # two read connections at once: the period's figures and the all-time ones scan independently
        figures, stats = await asyncio.gather(self._dashboard.figures(days, now), self._queries.stats())
        day_list = [(now - timedelta(days=days - 1 - i)).strftime("%Y-%m-%d") for i in range(days)]
        weeks = sorted(figures.sla_per_week)
        hours = sorted({h for per in figures.alerts_per_source_hour.values() for h in per})
        context = {
            "session": session,
            "days": days,
            "periods": PERIODS,
            "stats": stats,
            "figures": figures,
            "charts": [
                charts.bars(
                    "Open tickets by severity",
                    [s for s, _ in figures.open_by_severity],
                    {"open": dict(figures.open_by_severity)},
                ),
                charts.bars(
                    "Open tickets by group",
                    [g for g, _ in figures.open_by_group],
                    {"open": dict(figures.open_by_group)},
                ),
                charts.bars(
                    "Tickets opened and resolved per day",
                    day_list,
                    {"opened": figures.opened_per_day, "resolved": figures.resolved_per_day},
                ),
                charts.bars(
                    "MTTA and MTTR per day (minutes)",
                    day_list,
                    {"MTTA": figures.mtta_per_day, "MTTR": figures.mttr_per_day},
                    " min",
                ),
                charts.bars(
                    "SLA met vs breached per week (by the Monday)",
                    weeks,
                    {
                        "met": {w: m for w, (m, _) in figures.sla_per_week.items()},
                        "breached": {w: b for w, (_, b) in figures.sla_per_week.items()},
                    },
                ),
                charts.bars("Alerts per source per hour (UTC)", hours, figures.alerts_per_source_hour),
            ],
        }
        return aiohttp_jinja2.render_template("dashboard.html", request, context)


def _message(request: web.Request, session: Session | None, text: str, status: int) -> web.Response:
    return aiohttp_jinja2.render_template("message.html", request, {"session": session, "message": text}, status=status)
