"""`alertdesk run`: the whole pipeline in one process on embedded defaults (SQLite file, in-process hand-off)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from alertdesk.embedded import BatchStore, EmbeddedPipeline, HandoffMetrics
from alertdesk.health import health_routes
from alertdesk.runtime import utc_now
from alertdesk.settings import Settings
from alertdesk.writable import Writability
from alertdesk.writer import StoreProcess
from dedup import DedupMetrics
from ingest import IngestConfig, IngestMetrics, json_errors, open_sources, webhook_routes
from ticketstore.accounts import Accounts
from ticketstore.api.queries import TicketQueries
from ticketstore.api.routes import ApiConfig, ticket_api
from ticketstore.console.auth import ConsoleConfig
from ticketstore.console.pages import console
from ticketstore.db import Engines, create_engines, sqlite_file
from ticketstore.escalation.loops import Background, EscalationMetrics
from ticketstore.escalation.notify import Notifier, NotifyMetrics
from ticketstore.lifecycle import Lifecycle
from ticketstore.metrics import StoreMetrics
from ticketstore.migrate import upgrade
from ticketstore.policy import Policy, load_policy
from ticketstore.retention import Retention
from ticketstore.store import TicketStore
from ticketstore.trackers.dispatch import TrackerDispatcher, TrackerMetrics, check_environ, lease_for, mirrors
from ticketstore.trackers.inbound import tracker_routes

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def api_config(settings: Settings) -> ApiConfig:
    tokens = {settings.api_token.get_secret_value(): settings.api_token_name} if settings.api_token else {}
    read = frozenset({settings.api_read_token.get_secret_value()}) if settings.api_read_token else frozenset()
    return ApiConfig(tokens=tokens, read_tokens=read)


def console_config(settings: Settings) -> ConsoleConfig:
    return ConsoleConfig(
        public_url=settings.public_url,
        session_hours=settings.session_hours,
        proxy_header=settings.auth_proxy_header,
        proxy_networks=settings.proxy_networks(),
        proxy_role=settings.auth_proxy_role,
    )


def add_console(app: web.Application, store: TicketStore, engines: Engines, settings: Settings) -> None:
    """The web console beside /api (CONTRACT §6), its people and sessions in the ticket database."""
    accounts = Accounts(engines, now=utc_now, session_hours=settings.session_hours)
    console(app, store, engines, accounts, console_config(settings))


def ingest_config(settings: Settings) -> IngestConfig:
    return IngestConfig(tokens=settings.source_tokens(), max_body_bytes=settings.max_body_bytes)


def warn_open_webhooks(config: IngestConfig) -> None:
    """Say at start-up which webhooks anyone who can reach the port may post to."""
    for source in open_sources(config.tokens):
        logger.warning(
            "/webhooks/%s is open: set ALERTDESK_%s_TOKEN (or ALERTDESK_%s_TOKEN_FILE) to require a token",
            source.value,
            source.value.upper(),
            source.value.upper(),
        )


def warn_open_api(api: ApiConfig) -> None:
    if not api.tokens:
        logger.warning("operator actions on /api are open: set ALERTDESK_API_TOKEN (or _FILE) to require a token")


async def build_app(
    settings: Settings, *, registry: CollectorRegistry, environ: Mapping[str, str] | None = None
) -> web.Application:
    """Everything wired, schema upgraded; the writer and housekeeping start with the app and stop after it.

    `environ`: where the trackers' `*_env` credentials are (the process environment unless given).
    """
    policy = load_policy(settings.policy)
    environ = dict(os.environ) if environ is None else environ
    check_environ(policy, environ)
    engines = create_engines(settings.database_url, schema=settings.database_schema)
    try:
        await upgrade(engines.write)
    except BaseException:
        await engines.dispose()
        raise
    store = TicketStore(engines, Lifecycle(policy), now=utc_now)
    writer = _writer(settings, policy, store, registry)
    writability = Writability(registry)
    pipeline = EmbeddedPipeline(
        writer,
        StoreMetrics(registry),
        DedupMetrics(registry),
        HandoffMetrics(registry),
        writability,
        now=utc_now,
        timeout=settings.publish_timeout,
        max_batch=settings.max_batch,
        max_pending=settings.max_pending,
        on_commit=store.commits.notify,  # the writer may be a child process: its commits are not this store's
    )
    config, api = ingest_config(settings), api_config(settings)
    warn_open_webhooks(config)
    warn_open_api(api)

    app = web.Application(middlewares=[json_errors])
    app.add_routes(webhook_routes(config, pipeline, IngestMetrics(registry), now=utc_now))
    app.add_routes(ticket_api(store, TicketQueries(engines), api))
    app.add_routes(tracker_routes(store, policy, environ))
    app.add_routes(health_routes({"store": store.ping, "store_writable": writability.ready}, registry))
    add_console(app, store, engines, settings)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        if isinstance(writer, StoreProcess):
            await writer.start()
        await pipeline.start()
        async with background(store, engines, policy, settings, registry, utc_now, environ):
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
        return StoreProcess(
            settings.database_url,
            policy,
            registry,
            log_level=settings.log_level.upper(),
            log_format=settings.log_format,
        )
    return store


def _ticket_retention(store: TicketStore, engines: Engines, settings: Settings, now: Clock) -> Retention | None:
    if settings.ticket_retention_days is None:
        return None  # keep forever
    return Retention(store, engines, timedelta(days=settings.ticket_retention_days), now=now)


@contextlib.asynccontextmanager
async def background(
    store: TicketStore,
    engines: Engines,
    policy: Policy,
    settings: Settings,
    registry: CollectorRegistry,
    now: Clock,
    environ: Mapping[str, str],
) -> AsyncIterator[None]:
    """The store's chores (escalations, notifications, trackers, flapping, pruning) for as long as the block runs."""
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(engines, policy, session, NotifyMetrics(registry), now=now, public_url=settings.public_url)
        trackers = TrackerDispatcher(
            engines,
            mirrors(policy, session, environ, now=now),
            TrackerMetrics(registry),
            now=now,
            lease=lease_for(policy),
        )
        chores = Background(
            store,
            notifier,
            EscalationMetrics(registry),
            retention=timedelta(days=settings.retention_days),
            more=[("trackers", 1.0, trackers.run_once)] if policy.trackers else [],
            ticket_retention=_ticket_retention(store, engines, settings, now),
        )
        chores.start()
        try:
            yield
        finally:
            await chores.stop()
