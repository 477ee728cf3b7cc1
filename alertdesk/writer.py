"""The embedded store writer in a child process (SQLite): batches go in on its stdin, results come back on stdout.

Why a process: in one process the web server and the store's transaction share one interpreter lock, so
`alertdesk run` used one core of two. With the writer apart, the server does HTTP, normalizing, folding and
metrics, and the child runs `TicketStore.apply_batch` one batch at a time, answering after the commit. A 202
still means committed.

Frames are a 4-byte big-endian length and a pickle: both ends are this program on a private pipe, and pickle
costs a fraction of validating JSON. The child ignores SIGINT/SIGTERM (a Ctrl-C or a systemd stop reaches the
whole process group; the server must finish its in-flight requests first) and exits when its stdin closes, which
happens when the server stops or dies, after finishing the batch at hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pickle
import signal
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter

from normalizers.schema import TicketCommand, Unavailable
from ticketstore.db import NotWritable
from ticketstore.policy import Policy
from ticketstore.store import Applied

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_START_TIMEOUT = 60.0  # seconds for a child to import, connect and say it is ready


class StoreProcess:
    """`apply_batch` in a child process; restarted on the next batch if it dies.

    `reply_timeout` is a watchdog, not a deadline: a transaction may wait up to SQLite's busy timeout (10 s) for
    the write lock, so a child silent for longer is stuck, and is killed and replaced.
    """

    def __init__(
        self,
        database_url: str,
        policy: Policy,
        registry: CollectorRegistry,
        *,
        log_level: str = "INFO",
        log_format: str = "text",
        reply_timeout: float = 60.0,
    ) -> None:
        self._setup = pickle.dumps((database_url, policy, log_level, log_format))
        self._reply_timeout = reply_timeout
        self._child: asyncio.subprocess.Process | None = None
        self._replaced = Counter(
            "alertdesk_store_writer_restarts_total",
            "Times alertdesk run replaced its store writer process (it died, or did not answer)",
            registry=registry,
        )

    async def start(self) -> None:
        await self._start()

    async def apply_batch(self, commands: Sequence[TicketCommand]) -> list[Applied]:
        child = self._child
        if child is None or child.returncode is not None:
            if child is not None:  # died between two batches
                self._replaced.inc()
                logger.error("the store writer process exited (code %s); starting a new one", child.returncode)
            child = await self._start()
        assert child.stdin is not None and child.stdout is not None
        try:
            async with asyncio.timeout(self._reply_timeout):
                _send(child.stdin, pickle.dumps(list(commands), pickle.HIGHEST_PROTOCOL))
                await child.stdin.drain()
                outcome, value = await _read(child.stdout)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._child = None
            self._replaced.inc()
            code = await child.wait()
            logger.error("the store writer process exited (code %s); starting a new one", code)
            raise Unavailable("the store writer stopped; retry later") from exc
        except BaseException as exc:  # stuck, or cancelled half-way: a late reply could be taken for the next batch's
            self._child = None
            self._replaced.inc()
            child.kill()
            if isinstance(exc, TimeoutError):
                logger.error("the store writer did not answer in %gs; replacing it", self._reply_timeout)
                raise Unavailable("the store writer is stuck; retry later") from exc
            raise
        if outcome == "not_writable":
            raise NotWritable(value)
        if outcome == "unavailable":
            raise Unavailable(value)
        if outcome == "error":
            raise RuntimeError(value)
        result: list[Applied] = value
        return result

    async def stop(self) -> None:
        """Close the child's input: it finishes the batch at hand, if any, and exits."""
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None
        child.stdin.close()
        await child.wait()

    async def _start(self) -> asyncio.subprocess.Process:
        """A new child, once it says it is ready (its imports and database connection done)."""
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alertdesk.writer", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                _send(child.stdin, self._setup)
                await child.stdin.drain()
                await _read(child.stdout)  # ("ready", None)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            child.kill()
            await child.wait()
            raise Unavailable(f"the store writer process did not start (exit code {child.returncode})") from exc
        self._child = child
        return child


def _send(stream: asyncio.StreamWriter | IO[bytes], data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)) + data)


async def _read(stream: asyncio.StreamReader) -> Any:
    head = await stream.readexactly(_LENGTH.size)
    return pickle.loads(await stream.readexactly(_LENGTH.unpack(head)[0]))


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None  # the server closed our input: time to go
    return pickle.loads(stream.read(_LENGTH.unpack(head)[0]))


def main() -> None:
    """The child: one batch at a time, in order, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the frames
    database_url, policy, log_level, log_format = _receive(requests)

    from alertdesk import runtime
    from alertdesk.logs import configure_logging
    from ticketstore.db import create_engines
    from ticketstore.lifecycle import Lifecycle
    from ticketstore.store import TicketStore

    configure_logging(log_level, log_format)

    async def serve() -> None:
        engines = dataclasses.replace(create_engines(database_url), inline=True)  # one batch at a time anyway
        store = TicketStore(engines, Lifecycle(policy), now=runtime.utc_now, cache=True)  # the only batch writer
        runtime.tune_gc()
        _send(replies, pickle.dumps(("ready", None)))
        replies.flush()
        try:
            # blocking reads are fine: this loop has nothing else to do while it waits for the next batch
            while (commands := _receive(requests)) is not None:
                try:
                    reply: tuple[str, Any] = ("ok", await store.apply_batch(commands))
                except NotWritable as exc:
                    reply = ("not_writable", str(exc))
                except Unavailable as exc:
                    reply = ("unavailable", str(exc))
                except Exception as exc:  # the server answers 503; the traceback is for the log
                    logger.exception("store batch of %d commands failed", len(commands))
                    reply = ("error", f"{exc.__class__.__name__}: {exc}")
                _send(replies, pickle.dumps(reply, pickle.HIGHEST_PROTOCOL))
                replies.flush()
        finally:
            await engines.dispose()

    runtime.run(serve)


if __name__ == "__main__":
    main()
