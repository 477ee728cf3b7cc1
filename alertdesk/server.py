"""Serving an aiohttp app until SIGTERM/SIGINT, then stopping cleanly.

On a signal the listener closes first, in-flight requests finish (their alerts are committed or refused), and
only then do the app's cleanup contexts stop the pipeline and close the database.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from alertdesk.runtime import tune_gc
from ingest import RedactingAccessLogger

logger = logging.getLogger(__name__)

BACKLOG = 4096  # capped by net.core.somaxconn (4096 on current kernels)


async def serve(
    app: web.Application, host: str, port: int, *, access_log: bool = False, shutdown_timeout: float = 15.0
) -> None:
    """Serve until SIGTERM/SIGINT. Access logs (tokens redacted) only on request: at alert-storm rates they cost."""
    runner = web.AppRunner(
        app,
        access_log_class=RedactingAccessLogger,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    tune_gc()
    try:
        # a listen backlog for thousands of senders connecting at once: with the default 128 the kernel drops
        # their handshakes and a sender waits seconds of TCP retransmission before the server even sees it
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=BACKLOG)
        await site.start()
        logger.info("listening on http://%s:%d", host, port)
        await _until_signal()
        logger.info("stopping: finishing in-flight requests")
    finally:
        await runner.cleanup()
    logger.info("stopped")


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
