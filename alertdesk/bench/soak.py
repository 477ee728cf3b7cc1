"""`alertdesk bench --report-every S`: what a long run does to the server, printed every S seconds.

For a soak (`--duration 1800 --rate <half the max> --report-every 300`): the resident memory and open files of
the server and its store writer (from /proc), and the database's size on disk with its WAL. After warm-up the
memory should stay flat; a leak shows as a steady climb from line to line.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _open_files(pid: int) -> int:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0


def _size_mb(database: Path) -> float:
    files = [database, database.with_name(database.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def line(elapsed: float, server: int, database: Path | None) -> str:
    pids = [server, *_children(server)]
    rss = " + ".join(f"{_rss_mb(p):.0f}" for p in pids)
    size = f"{_size_mb(database):.1f} MB" if database is not None else "n/a"
    return f"soak {elapsed:7.0f}s  rss MB {rss}  open files {sum(_open_files(p) for p in pids)}  database {size}"


@dataclass(frozen=True)
class Soak:
    server: int  # pid of the `alertdesk run` under test
    database: Path | None  # its SQLite file, if it has one
    every: float  # seconds between lines

    async def report(self) -> None:
        """Print a line now and every `every` seconds until cancelled."""
        started = time.perf_counter()
        while True:
            print(line(time.perf_counter() - started, self.server, self.database), flush=True)
            await asyncio.sleep(self.every)

    def final(self, elapsed: float) -> str:
        return line(elapsed, self.server, self.database)
