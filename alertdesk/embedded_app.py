"""`alertdesk run`: the whole pipeline in one process on embedded defaults (SQLite file, in-process hand-off)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from alertdesk.embedded import BatchStore, EmbeddedPipeline
from alertdesk.health import health_routes
from alertdesk.runtime import utc_now
from alertdesk.settings import Settings
from alertdesk.writer import StoreProcess
from dedup import DedupMetrics
from ingest import IngestConfig, IngestMetrics, json_errors, open_sources, webhook_routes
from normalizers.schema import AlertdeskError
from ticketstore.api.queries import TicketQueries
from ticketstore.api.routes import ApiConfig, ticket_api
from ticketstore.db import Engines, create_engines, sqlite_file
from ticketstore.escalation.loops import Background, EscalationMetrics
from ticketstore.escalation.notify import Notifier, NotifyMetrics
from ticketstore.lifecycle import Lifecycle
from ticketstore.metrics import StoreMetrics
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy, load_policy
from ticketstore.store import TicketStore

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class AlreadyRunning(AlertdeskError):
    """Another `alertdesk run` holds this SQLite database."""


def api_config(settings: Settings) -> ApiConfig:
    tokens = {settings.api_token.get_secret_value(): settings.api_token_name} if settings.api_token else {}
    read = frozenset({settings.api_read_token.get_secret_value()}) if settings.api_read_token else frozenset()
    return ApiConfig(tokens=tokens, read_tokens=read)


def ingest_config(settings: Settings) -> IngestConfig:
    return IngestConfig(tokens=settings.source_tokens(), max_body_bytes=settings.max_body_bytes)


def warn_open_webhooks(config: IngestConfig) -> None:
    """Say at start-up which webhooks anyone who can reach the port may post to."""
    for source in open_sources(config.tokens):
        logger.warning(
            "/webhooks/%s is open: set ALERTDESK_%s_TOKEN to require a token", source.value, source.value.upper()
        )


def warn_open_api(api: ApiConfig) -> None:
    if not api.tokens:
        logger.warning("operator actions on /api are open: set ALERTDESK_API_TOKEN to require a token")


async def build_app(settings: Settings, *, registry: CollectorRegistry) -> web.Application:
    """Everything wired, schema upgraded; the writer and housekeeping start with the app and stop after it."""
    policy = load_policy(settings.policy)
    engines = create_engines(settings.database_url, schema=settings.database_schema)
    try:
        await upgrade(engines.write)
    except BaseException:
        await engines.dispose()
        raise
    store = TicketStore(engines, Lifecycle(policy), now=utc_now)
    writer = _writer(settings, policy, store, registry)
    pipeline = EmbeddedPipeline(
        writer,
        StoreMetrics(registry),
        DedupMetrics(registry),
        now=utc_now,
        timeout=settings.publish_timeout,
        max_batch=settings.max_batch,
        on_commit=store.commits.notify,  # the writer may be a child process: its commits are not this store's
    )
    config, api = ingest_config(settings), api_config(settings)
    warn_open_webhooks(config)
    warn_open_api(api)

    app = web.Application(middlewares=[json_errors])
    app.add_routes(webhook_routes(config, pipeline, IngestMetrics(registry), now=utc_now))
    app.add_routes(ticket_api(store, TicketQueries(engines), api))
    app.add_routes(health_routes({"store": store.ping}, registry))

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        if isinstance(writer, StoreProcess):
            await writer.start()
        await pipeline.start()
        async with background(store, engines, policy, settings, registry, utc_now):
            yield
        await pipeline.stop()
        if isinstance(writer, StoreProcess):
            await writer.stop()
        await engines.dispose()

    app.cleanup_ctx.append(lifecycle)
    return app


def _writer(settings: Settings, policy: Policy, store: TicketStore, registry: CollectorRegistry) -> BatchStore:
    """Who applies the alert batches: a child process on a SQLite file (the default), else the store itself.

    PostgreSQL needs no child: asyncpg does its I/O on the event loop without holding a thread.
    """
    if settings.store_process and sqlite_file(settings.database_url) is not None:
        return StoreProcess(settings.database_url, policy, registry, log_level=settings.log_level.upper())
    return store


@contextlib.asynccontextmanager
async def background(
    store: TicketStore, engines: Engines, policy: Policy, settings: Settings, registry: CollectorRegistry, now: Clock
) -> AsyncIterator[None]:
    """The store's chores (escalations, notifications, flapping, pruning) for as long as the block runs."""
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(engines, policy, session, NotifyMetrics(registry), now=now)
        chores = Background(
            store,
            notifier,
            EscalationMetrics(registry),
            retention=timedelta(days=settings.retention_days),
        )
        chores.start()
        try:
            yield
        finally:
            await chores.stop()


def lock_database(url: str) -> IO[str] | None:
    """Refuse a second `alertdesk run` on the same SQLite file (it would corrupt nothing, but double the work)."""
    database = sqlite_file(url)
    if database is None:
        return None
    path = Path(database).resolve()
    handle = open(f"{path}.lock", "w")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunning(f"another alertdesk is running on {path} (lock {path}.lock is held)") from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
