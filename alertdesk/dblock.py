"""The run lock of a SQLite database: `<file>.lock`, held by `alertdesk run` for as long as it serves that file.

A second `alertdesk run` on the same file is refused (it would corrupt nothing, but double the work), and so is
`alertdesk restore` onto a file a server is writing. An flock goes away with its process, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from normalizers.schema import AlertdeskError
from ticketstore.db import sqlite_file


class AlreadyRunning(AlertdeskError):
    """Another alertdesk holds this SQLite database."""


def lock_database(url: str) -> IO[str] | None:
    """The held lock of the SQLite file of `url` (None for another database). Raises `AlreadyRunning`."""
    database = sqlite_file(url)
    if database is None:
        return None
    path = Path(database).resolve()
    # "a+", not "w": a refused second one must leave the holder's pid in the file, to be named
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise AlreadyRunning(f"another alertdesk is running on {path} (pid {holder}; lock {path}.lock)") from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
