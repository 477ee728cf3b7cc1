"""`alertdesk maintenance add|list|end`: maintenance windows from a shell, on the database of ALERTDESK_DATABASE_URL.

The same checks and rows as `POST/GET/DELETE /api/maintenance`: the command writes the window, and every store
process (`alertdesk run`, `alertdesk store`) applies it within about a second. Times without a zone are UTC.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from alertdesk.runtime import utc_now
from alertdesk.settings import Settings
from ticketstore.db import create_engines
from ticketstore.lifecycle import Lifecycle
from ticketstore.maintenance import InvalidWindow, Window, WindowNotFound, WindowRequest
from ticketstore.migrate import upgrade
from ticketstore.policy import load_policy
from ticketstore.store import TicketStore
from ticketstore.windows import MaintenanceWindows, WindowAlreadyEnded

_MATCH_FLAGS = (("source", "source"), ("instance", "instance"), ("host", "host"), ("service", "service"),
                ("key", "dedup_key"))  # fmt: skip


def add_parser(commands: Any) -> None:
    """The `maintenance` command and its three actions."""
    parser = commands.add_parser("maintenance", help="silence planned work: add, list or end maintenance windows")
    parser.add_argument("--database-url", help="SQLAlchemy URL (ALERTDESK_DATABASE_URL)")
    parser.add_argument("--policy", help="policy YAML: its time zone is the weekly windows' (ALERTDESK_POLICY)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="silence matching alerts for a time (shell patterns: 'db*')")
    for flag, _ in _MATCH_FLAGS:
        add.add_argument(f"--{flag}", help=f"{flag} pattern")
    add.add_argument("--all", action="store_true", help="no pattern: silence every alert")
    add.add_argument("--for", dest="duration", help="how long from the start: 30m, 2h, 1d")
    add.add_argument("--until", help="end, ISO 8601 (UTC if no zone is given)")
    add.add_argument("--starts", help="start, ISO 8601 (default: now)")
    add.add_argument("--weekly", help="recur weekly, e.g. 'sun 02:00-04:00' (policy's time zone)")
    add.add_argument("--comment", required=True, help="why: the change ticket, the work")
    add.add_argument("--by", default=None, help="who (default: your login name)")
    listing = actions.add_parser("list", help="the windows: active, upcoming and recently ended")
    listing.add_argument("--state", choices=("active", "upcoming", "ended"))
    end = actions.add_parser("end", help="end a window now; its tickets still broken page once")
    end.add_argument("id", type=int)
    end.add_argument("--by", default=None, help="who (default: your login name)")


async def maintenance(settings: Settings, args: argparse.Namespace) -> int:
    engines = create_engines(settings.database_url, schema=settings.database_schema)
    try:
        await upgrade(engines.write)
        store = TicketStore(engines, Lifecycle(load_policy(settings.policy)), now=utc_now)
        windows = MaintenanceWindows(store)
        if args.action == "add":
            return await _add(windows, args, args.by or getpass.getuser())
        if args.action == "end":
            return await _end(windows, args.id, args.by or getpass.getuser())
        _print(await windows.list(args.state), store.now(), windows)
        return 0
    finally:
        await engines.dispose()


async def _add(windows: MaintenanceWindows, args: argparse.Namespace, by: str) -> int:
    body: dict[str, Any] = {
        "match": {name: getattr(args, flag) for flag, name in _MATCH_FLAGS if getattr(args, flag) is not None},
        "all": args.all,
        "comment": args.comment,
    }
    for key, value in (("duration", args.duration), ("recurrence", args.weekly)):
        if value is not None:
            body[key] = value
    for key, flag, value in (("ends_at", "--until", args.until), ("starts_at", "--starts", args.starts)):
        if value is not None:
            try:
                body[key] = _instant(value)
            except ValueError as exc:
                return _refuse(f"{flag}: {exc}")
    try:
        window = await windows.create(WindowRequest.model_validate(body), by)
    except ValidationError as exc:
        return _refuse("; ".join(f"{_flag(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()))
    except InvalidWindow as exc:
        return _refuse(f"{_flag((exc.field,))}: {exc.msg}")
    print(f"maintenance window {window.id} added")
    _print([window], utc_now(), windows)
    return 0


async def _end(windows: MaintenanceWindows, window_id: int, by: str) -> int:
    try:
        window = await windows.end(window_id, by)
    except (WindowNotFound, WindowAlreadyEnded) as exc:
        print(f"alertdesk: {exc}", file=sys.stderr)
        return 1
    print(f"maintenance window {window.id} ended; its tickets still active resume within a few seconds")
    return 0


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_FLAGS = {"ends_at": "--until", "starts_at": "--starts", "duration": "--for", "recurrence": "--weekly",
          "dedup_key": "--key", "match": "--host/--service/--source/--instance/--key"}  # fmt: skip


def _flag(loc: tuple[Any, ...]) -> str:
    name = str(loc[-1]) if loc else ""
    return _FLAGS.get(name, f"--{name}")


def _refuse(message: str) -> int:
    print(f"alertdesk: {message}", file=sys.stderr)
    return 2


def _print(found: list[Window], now: datetime, windows: MaintenanceWindows) -> None:
    rows = [("ID", "STATE", "MATCH", "STARTS (UTC)", "ENDS (UTC)", "WEEKLY", "BY", "COMMENT")]
    for w in found:
        ended = f" (ended by {w.ended_by})" if w.ended_by else ""
        rows.append(
            (
                str(w.id),
                w.state(now, windows.zone),
                " ".join(f"{k}={v}" for k, v in w.match.items()) or "everything",
                f"{w.starts_at:%Y-%m-%d %H:%M}",
                f"{w.over_at():%Y-%m-%d %H:%M}" if w.over_at() else "-",
                w.recurrence.describe() if w.recurrence else "-",
                w.created_by,
                w.comment + ended,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
