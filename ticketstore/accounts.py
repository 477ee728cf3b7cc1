"""The console's people: accounts (argon2id hashes), sessions and the slowing of failed sign-ins.

Everything lives in the ticket database, so every `alertdesk store` process knows the same people and sessions:
sign in through one, carry on through another; sign out or remove a person and every process forgets them.
A session cookie is a random token; the table keeps only its SHA-256, so a copy of the database signs nobody in.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from normalizers.schema import AlertdeskError
from ticketstore import tables as t
from ticketstore.db import Engines, outage_is_unavailable

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
Clock = Callable[[], datetime]

FREE_FAILURES = 3  # failed sign-ins allowed back to back before the waiting starts
MAX_WAIT = timedelta(minutes=5)
FORGET_AFTER = timedelta(hours=1)  # a name's or address's failures are forgotten after an hour without one
_HASHER = PasswordHasher()  # argon2id, the library's recommended parameters (RFC 9106 low-memory profile)
_NOT_A_HASH = _HASHER.hash(secrets.token_hex(16))  # verified against for unknown names: same time as a real one


class AccountError(AlertdeskError):
    """A request about accounts that cannot be done as asked (unknown person, name taken, bad role)."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person as the console sees them on each request."""

    user: str
    role: Role
    csrf_token: str
    token_hash: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Throttled:
    """Too many failures for this name or address: try again in `retry_after` seconds."""

    retry_after: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode(errors="surrogateescape")).hexdigest()


def wait_after(failures: int) -> timedelta:
    """How long after the latest failure the next attempt must wait: 0, 0, 0, then 1 s, 2 s, 4 s … up to 5 min."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (failures - FREE_FAILURES)), MAX_WAIT)


class Accounts:
    def __init__(self, engines: Engines, *, now: Clock, session_hours: float = 12.0) -> None:
        self._engines = engines
        self._now = now
        self._lifetime = timedelta(hours=session_hours)

    # --- the people (alertdesk users …) -------------------------------------------------------------------

    async def add(self, name: str, password: str, role: Role) -> User:
        _check(name, password, role)
        digest = await asyncio.to_thread(_HASHER.hash, password)
        user = User(name, role, self._now())

        def run(conn: Connection) -> None:
            try:
                values = {"name": name, "role": role, "password_hash": digest, "created_at": user.created_at}
                conn.execute(insert(t.users).values(values))
            except IntegrityError:
                raise AccountError(f"there is already a person named {name!r}") from None

        await self._write(run)
        return user

    async def list(self) -> list[User]:
        c = t.users.c
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                found = await conn.execute(select(c.name, c.role, c.created_at).order_by(c.name))
                return [User(r.name, r.role, r.created_at) for r in found]

    async def set_password(self, name: str, password: str) -> None:
        """A new password; the person's sessions end (whoever knew the old one is signed out)."""
        _check(name, password, "viewer")
        digest = await asyncio.to_thread(_HASHER.hash, password)

        def run(conn: Connection) -> None:
            if not conn.execute(update(t.users).where(t.users.c.name == name).values(password_hash=digest)).rowcount:
                raise AccountError(f"nobody is named {name!r}")
            conn.execute(delete(t.sessions).where(t.sessions.c.user_name == name))

        await self._write(run)

    async def remove(self, name: str) -> None:
        """Remove the person and end their sessions in every process."""

        def run(conn: Connection) -> None:
            conn.execute(delete(t.sessions).where(t.sessions.c.user_name == name))
            if not conn.execute(delete(t.users).where(t.users.c.name == name)).rowcount:
                raise AccountError(f"nobody is named {name!r}")

        await self._write(run)

    # --- signing in and out -------------------------------------------------------------------------------

    async def sign_in(self, name: str, password: str, address: str) -> tuple[str, Session] | Throttled | None:
        """(cookie token, session) for the right password; None for a wrong one; `Throttled` while slowed."""
        now = self._now()
        keys = (f"name:{name[:250]}", f"addr:{address[:250]}")
        waiting = await self._waiting(keys, now)
        if waiting > 0:
            return Throttled(waiting)
        c = t.users.c
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                row = (await conn.execute(select(c.role, c.password_hash).where(c.name == name))).first()
        good = await asyncio.to_thread(_verify, row.password_hash if row else _NOT_A_HASH, password)
        if row is None or not good:
            await self._write(lambda conn: _count_failure(conn, keys, now))
            return None
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(name, row.role, csrf, hash_token(token), now + self._lifetime)
        await self._write(lambda conn: _open_session(conn, session, now, keys[0]))
        return token, session

    async def session_for(self, name: str, role: Role) -> tuple[str, Session]:
        """A session for a person the auth proxy vouched for (no password here)."""
        now = self._now()
        token = secrets.token_urlsafe(32)
        session = Session(name, role, secrets.token_urlsafe(32), hash_token(token), now + self._lifetime)
        await self._write(lambda conn: _open_session(conn, session, now, None))
        return token, session

    async def session(self, token: str) -> Session | None:
        """The live session of a cookie; the person's current role (a removed person has none)."""
        s, u = t.sessions.c, t.users.c
        query = (
            select(s.user_name, s.role, s.csrf_token, s.token_hash, s.expires_at, u.role.label("current_role"))
            .select_from(t.sessions.outerjoin(t.users, u.name == s.user_name))
            .where(s.token_hash == hash_token(token), s.expires_at > self._now())
        )
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Session(row.user_name, row.current_role or row.role, row.csrf_token, row.token_hash, row.expires_at)

    async def sign_out(self, session: Session) -> None:
        """End the session in the database: the cookie is worthless everywhere from now on."""
        now = self._now()

        def run(conn: Connection) -> None:
            conn.execute(delete(t.sessions).where(t.sessions.c.token_hash == session.token_hash))
            conn.execute(delete(t.sessions).where(t.sessions.c.expires_at <= now))  # the expired go with it

        await self._write(run)

    async def role_of(self, name: str) -> Role | None:
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                role: Role | None = await conn.scalar(select(t.users.c.role).where(t.users.c.name == name))
                return role

    # --- helpers ------------------------------------------------------------------------------------------

    async def _waiting(self, keys: tuple[str, ...], now: datetime) -> int:
        f = t.login_failures.c
        with outage_is_unavailable():
            async with self._engines.read.connect() as conn:
                recent = f.last_at >= now - FORGET_AFTER
                found = (await conn.execute(select(f.failures, f.last_at).where(f.key.in_(keys), recent))).all()
        until = max((r.last_at + wait_after(r.failures) for r in found), default=now)
        return max(0, int((until - now).total_seconds() + 0.999))

    async def _write(self, fn: Callable[[Connection], None]) -> None:
        with outage_is_unavailable():
            await self._engines.transact(fn)


def _check(name: str, password: str, role: str) -> None:
    if not name or len(name) > 255 or name != name.strip() or any(ch.isspace() and ch != " " for ch in name):
        raise AccountError("a name is 1 to 255 characters, without surrounding spaces, tabs or line breaks")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise AccountError("a password has at least 8 characters")


def _verify(digest: str, password: str) -> bool:
    try:
        return _HASHER.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(conn: Connection, keys: tuple[str, ...], now: datetime) -> None:
    f = t.login_failures.c
    counted = case((f.last_at < now - FORGET_AFTER, 1), else_=f.failures + 1)  # an hour quiet: start again
    for key in keys:
        bumped = conn.execute(update(t.login_failures).where(f.key == key).values(failures=counted, last_at=now))
        if not bumped.rowcount:
            try:
                with conn.begin_nested():
                    conn.execute(insert(t.login_failures).values(key=key, failures=1, last_at=now))
            except IntegrityError:  # another process counted the first failure at the same moment
                conn.execute(update(t.login_failures).where(f.key == key).values(failures=f.failures + 1, last_at=now))


def _open_session(conn: Connection, session: Session, now: datetime, forget: str | None) -> None:
    values = {
        "token_hash": session.token_hash,
        "user_name": session.user,
        "role": session.role,
        "csrf_token": session.csrf_token,
        "created_at": now,
        "expires_at": session.expires_at,
    }
    conn.execute(insert(t.sessions).values(values))
    if forget is not None:  # a right password clears the name's failures (not the address's)
        conn.execute(delete(t.login_failures).where(t.login_failures.c.key == forget))
