"""`alertdesk users add|list|passwd|remove`: the console's people, kept in the ticket database.

A password is asked twice on a terminal (getpass, nothing echoed); from a pipe it is the first line of stdin, so
scripts and configuration management can create accounts: `echo "$PW" | alertdesk users add alice`.
"""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from alertdesk.runtime import utc_now
from alertdesk.settings import Settings
from normalizers.schema import AlertdeskError
from ticketstore.accounts import AccountError, Accounts, Role
from ticketstore.db import create_engines
from ticketstore.migrate import upgrade


def read_password(stdin: TextIO) -> str:
    """Twice on a terminal (they must match); else one line of stdin without its line break."""
    if stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("password again: ") != first:
            raise AccountError("the two passwords differ")
        return first
    line = stdin.readline()
    if not line:
        raise AccountError("no password on stdin (give one line)")
    return line.rstrip("\r\n")


async def users(settings: Settings, action: str, name: str | None, role: Role) -> int:
    engines = create_engines(settings.database_url, schema=settings.database_schema)
    try:
        await upgrade(engines.write)
        accounts = Accounts(engines, now=utc_now, session_hours=settings.session_hours)
        if action == "list":
            for user in await accounts.list():
                print(f"{user.name}\t{user.role}\t{user.created_at:%Y-%m-%dT%H:%M:%SZ}")
            return 0
        assert name is not None
        if action == "add":
            await accounts.add(name, read_password(sys.stdin), role)
            print(f"added {name} ({role})")
        elif action == "passwd":
            await accounts.set_password(name, read_password(sys.stdin))
            print(f"password of {name} changed; their sessions ended")
        elif action == "remove":
            await accounts.remove(name)
            print(f"removed {name}; their sessions ended")
        return 0
    except AccountError as exc:
        print(f"alertdesk users: {exc}", file=sys.stderr)
        return 1
    except AlertdeskError:
        raise
    finally:
        await engines.dispose()
