"""Who is asking: the session cookie (or a trusted single-sign-on proxy), the CSRF check and the sign-in pages.

A person is known by a row of `sessions` (see `ticketstore.accounts`), never by a name in a form. Every state
changing form carries the session's CSRF token; the sign-in form, which comes before any session, carries a
double-submit token (a cookie and a hidden field that must match).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import hdrs, web
from multidict import MultiDictProxy

from ticketstore.accounts import Accounts, Role, Session, Throttled

COOKIE = "alertdesk_session"
LOGIN_COOKIE = "alertdesk_login"
NEW_SESSION = web.RequestKey("console_new_session", str)  # a proxy user's fresh cookie, set on the way out


@dataclass(frozen=True)
class ConsoleConfig:
    """`public_url`: base of ticket links and https → Secure cookies. `proxy_*`: single sign-on behind a proxy."""

    public_url: str | None = None
    session_hours: float = 12.0
    proxy_header: str | None = None
    proxy_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    proxy_role: Role = "viewer"

    @property
    def secure(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))


class Forbidden(Exception):
    """The request may not do this (viewer acting, missing or wrong CSRF token): 403, nothing changed."""


class Gate:
    def __init__(self, accounts: Accounts, config: ConsoleConfig) -> None:
        self._accounts = accounts
        self._config = config

    async def who(self, request: web.Request) -> Session | None:
        """The signed-in person, or None. A proxy user without a session gets one (its cookie is set on the way out)."""
        token = request.cookies.get(COOKIE)
        session = await self._accounts.session(token) if token else None
        proxied = self._proxy_user(request)
        if proxied is not None and (session is None or session.user != proxied):
            role = await self._accounts.role_of(proxied) or self._config.proxy_role
            token, session = await self._accounts.session_for(proxied, role)
            request[NEW_SESSION] = token
        return session

    async def form(self, request: web.Request, session: Session, *, operator: bool = True) -> MultiDictProxy[Any]:
        """The posted form, once its CSRF token matches the session's (and the person may act, if asked)."""
        form = await request.post()
        sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise Forbidden("the form's CSRF token is missing or wrong; reload the page and try again")
        if operator and session.role != "operator":
            raise Forbidden("a viewer can read tickets but not act on them")
        return form

    def _proxy_user(self, request: web.Request) -> str | None:
        header = self._config.proxy_header
        if not header or request.remote is None:
            return None
        name = request.headers.get(header, "").strip()
        try:
            peer = ip_address(request.remote)
        except ValueError:
            return None
        if not name or len(name) > 255 or not any(peer in net for net in self._config.proxy_networks):
            return None
        return name

    # --- the sign-in pages --------------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if await self.who(request) is not None:
            return redirect(safe_next(request.query.get("next")))
        return self._login_form(request, safe_next(request.query.get("next")), None, 200)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        target = safe_next(_text(form.get("next")))
        sent, expected = _text(form.get("csrf")), request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return self._login_form(request, target, "The form expired; please sign in again.", 403)
        name, password = _text(form.get("username")).strip(), _text(form.get("password"))
        outcome = await self._accounts.sign_in(name, password, request.remote or "unknown")
        if isinstance(outcome, Throttled):
            response = self._login_form(
                request, target, f"Too many failed sign-ins; try again in {outcome.retry_after} s.", 429
            )
            response.headers[hdrs.RETRY_AFTER] = str(outcome.retry_after)
            return response
        if outcome is None:
            return self._login_form(request, target, "Wrong name or password.", 401)
        token, _ = outcome
        response = redirect(target)
        self.set_cookie(response, token)
        response.del_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = await self.who(request)
        if session is None:
            return redirect("/login")
        await self.form(request, session, operator=False)
        await self._accounts.sign_out(session)
        response = redirect("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self._config.secure,
            max_age=int(self._config.session_hours * 3600),
        )

    def _login_form(self, request: web.Request, target: str, error: str | None, status: int) -> web.Response:
        csrf = secrets.token_urlsafe(24)
        context = {"next": target, "csrf": csrf, "error": error, "session": None}
        response = aiohttp_jinja2.render_template("login.html", request, context, status=status)
        # only a nonce against cross-site sign-in forms: not Secure, so a wrong scheme fails at the session cookie
        response.set_cookie(LOGIN_COOKIE, csrf, path="/login", httponly=True, samesite="Strict")
        return response


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (no `//host`, no scheme), else the queue."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/tickets"
    if any(ord(ch) < 0x20 or ch == "\\" for ch in value):
        return "/tickets"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/tickets"
    return value


def login_url(request: web.Request) -> str:
    return f"/login?next={quote(request.path_qs, safe='')}"


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={hdrs.LOCATION: location})


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
