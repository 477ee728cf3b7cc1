"""`alertdesk ingest`, `alertdesk dedup`, `alertdesk store`: the stages as separate processes on RabbitMQ.

Each process serves /healthz, /readyz (its broker session, and the database for the store) and /metrics on its
own port; ingest also serves the webhooks, the store the ticket API and the housekeeping of `alertdesk run`.
The stage code is the embedded mode's (normalize, fold, `TicketStore.apply_batch`); only the hand-off differs.
A process runs its broker link beside its web server: losing the broker only pauses it (ingest answers 503),
while a topology that does not match the settings stops it with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from alertdesk import server
from alertdesk.embedded_app import (
    add_console,
    api_config,
    background,
    ingest_config,
    warn_open_api,
    warn_open_webhooks,
)
from alertdesk.health import health_routes
from alertdesk.runtime import utc_now
from alertdesk.settings import Settings
from alertdesk.writable import Writability
from dedup import DedupMetrics
from dedup.hold import Hold, HoldConfig
from dedup.rabbitmq.broker import Broker, Session
from dedup.rabbitmq.consumer import PartitionWorker, WorkerConfig
from dedup.rabbitmq.grouped import AmqpPublisher
from dedup.rabbitmq.metrics import BrokerMetrics
from dedup.rabbitmq.partitions import Assignment
from dedup.rabbitmq.topology import DEFAULT_PARTITIONS, Stream, Topology, close_quietly, partition_count
from dedup.worker import DedupStage
from ingest import IngestMetrics, json_errors, webhook_routes
from normalizers.schema import AlertdeskError, Unavailable
from ticketstore.api.queries import TicketQueries
from ticketstore.api.routes import ticket_api
from ticketstore.db import create_engines, is_sqlite
from ticketstore.lifecycle import Lifecycle
from ticketstore.metrics import StoreMetrics
from ticketstore.migrate import upgrade
from ticketstore.policy import load_policy
from ticketstore.store import TicketStore
from ticketstore.trackers.dispatch import check_environ
from ticketstore.trackers.inbound import tracker_routes
from ticketstore.worker import StoreStage

logger = logging.getLogger(__name__)


class NotConfigured(AlertdeskError):
    """A distributed process was started without what it needs."""


@dataclass(frozen=True)
class Process:
    """A stage wired up: its web app, the session to run on each broker connection, what to close at the end."""

    app: web.Application
    broker: Broker
    session: Session
    close: Callable[[], Awaitable[None]] | None = None


def topology(settings: Settings) -> Topology:
    return Topology(settings.broker_prefix, settings.partitions or DEFAULT_PARTITIONS)


async def with_partitions(settings: Settings) -> Settings:
    """Settings whose partition count is set (`topology.partition_count`); an unreachable broker: the default."""
    if settings.partitions is not None or not settings.broker_url:
        return settings
    metrics = BrokerMetrics(CollectorRegistry(), "partitions")
    try:
        connection = await Broker(settings.broker_url, name="alertdesk partitions", metrics=metrics).connect_once()
    except Unavailable:
        logger.warning(
            "cannot reach the message broker to read its partition count; assuming %d (a broker holding another "
            "count is refused when reached: set ALERTDESK_PARTITIONS)",
            DEFAULT_PARTITIONS,
        )
        return settings.model_copy(update={"partitions": DEFAULT_PARTITIONS})
    try:
        found = await partition_count(connection, settings.broker_prefix, settings.partitions)
    finally:
        await close_quietly(connection)
    return settings.model_copy(update={"partitions": found})


def broker(settings: Settings, stage: str, metrics: BrokerMetrics) -> Broker:
    if not settings.broker_url:
        raise NotConfigured(f"`alertdesk {stage}` needs ALERTDESK_BROKER_URL (amqp://user:password@host:5672/vhost)")
    index = f" {settings.worker_index}" if stage != "ingest" else ""
    return Broker(settings.broker_url, name=f"alertdesk {stage}{index} (pid {os.getpid()})", metrics=metrics)


def worker_config(settings: Settings, stream: Stream, stage: str) -> WorkerConfig:
    return WorkerConfig(
        stream=stream,
        stage=stage,
        assignment=Assignment(settings.worker_index, settings.worker_count, settings.partitions or DEFAULT_PARTITIONS),
        window_count=settings.window_count,
        # the store commits what arrived while it committed the last window (group commit): a timer there only
        # adds latency, as dedup's window already gathers its commands into one message per partition
        window_seconds=(settings.store_window_ms if stream is Stream.TICKETS else settings.window_ms) / 1000,
        prefetch=settings.prefetch,
        takeover_interval=settings.takeover_interval,
        publish_timeout=settings.publish_timeout,
    )


MAX_PREFETCH = 65_535  # RabbitMQ's limit


def hold_prefetch(settings: Settings) -> int:
    """A holding dedup worker's prefetch: room for as many held messages as the hold may keep alerts.

    At a low rate an ingest message carries one or two alerts, and each held alert keeps its message unacked; with
    the plain prefetch (2,000) the hold would let keys go after a few seconds, a handful of repeats each (measured:
    a 100,000-alert storm at 700/s wrote 23,056 rows instead of ~5,000)."""
    return min(MAX_PREFETCH, max(settings.prefetch, settings.hold_max * 4 // 3 + 1))


def hold_config(settings: Settings, prefetch: int) -> HoldConfig:
    """The hold lets go of a channel's oldest deliveries before its unacked ones reach the prefetch (which would
    stop the deliveries until a hold expires)."""
    span = max(prefetch * 3 // 4, 1)
    return HoldConfig(
        count=settings.hold_count,
        seconds=settings.hold_seconds,
        quiet=settings.hold_quiet_seconds,
        capacity=settings.hold_max,
        span=span,
    )


async def run_stage(stage: str, settings: Settings) -> int:
    """Serve one stage until SIGTERM/SIGINT; a fatal broker error (topology mismatch) ends it with its reason."""
    settings = await with_partitions(settings)
    registry = CollectorRegistry()
    build = {"ingest": ingest_process, "dedup": dedup_process, "store": store_process}[stage]
    process = await build(settings, registry)
    link = asyncio.create_task(process.broker.run(process.session), name="broker")
    web_server = asyncio.create_task(
        server.serve(process.app, settings.host, settings.port, access_log=settings.access_log), name="web"
    )
    try:
        done, _ = await asyncio.wait({link, web_server}, return_when=asyncio.FIRST_COMPLETED)
        first, other = (link, web_server) if link in done else (web_server, link)
        other.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await other
        first.result()
    finally:
        if process.close is not None:
            await process.close()
    return 0


async def ingest_process(settings: Settings, registry: CollectorRegistry) -> Process:
    metrics = BrokerMetrics(registry, "ingest")
    publisher = AmqpPublisher(
        topology(settings),
        metrics,
        timeout=settings.publish_timeout,
        max_pending=settings.max_pending,
        linger=settings.publish_linger_ms / 1000,
    )
    config = ingest_config(settings)
    warn_open_webhooks(config)
    app = web.Application(middlewares=[json_errors])
    app.add_routes(webhook_routes(config, publisher, IngestMetrics(registry), now=utc_now))
    app.add_routes(health_routes({"broker": publisher.ready}, registry))
    return Process(app, broker(settings, "ingest", metrics), publisher.session)


async def dedup_process(settings: Settings, registry: CollectorRegistry) -> Process:
    metrics = BrokerMetrics(registry, "dedup")
    link = broker(settings, "dedup", metrics)
    queues = topology(settings)
    config = worker_config(settings, Stream.ALERTS, "dedup")
    hold = None
    if settings.hold_count > 1:
        config = replace(config, prefetch=hold_prefetch(settings))
        hold = Hold(hold_config(settings, config.prefetch))
    stage = DedupStage(queues, DedupMetrics(registry), metrics, now=utc_now, hold=hold)
    worker = PartitionWorker(queues, config, stage, metrics, holding=hold)
    app = web.Application(middlewares=[json_errors])
    app.add_routes(health_routes({"broker": worker.ready}, registry))
    return Process(app, link, worker.session)


async def store_process(settings: Settings, registry: CollectorRegistry) -> Process:
    if is_sqlite(settings.database_url):
        raise NotConfigured("`alertdesk store` needs ALERTDESK_DATABASE_URL=postgresql+asyncpg://… (not SQLite)")
    metrics = BrokerMetrics(registry, "store")
    link = broker(settings, "store", metrics)
    engines = create_engines(settings.database_url, schema=settings.database_schema)
    try:
        await upgrade(engines.write)
    except (SQLAlchemyError, OSError) as exc:
        await engines.dispose()
        raise Unavailable(f"cannot upgrade the database schema: {exc.__class__.__name__}: {exc}") from exc
    policy = load_policy(settings.policy)
    store = TicketStore(engines, Lifecycle(policy), now=utc_now)
    queues = topology(settings)
    writability = Writability(registry, meanwhile="ticket commands wait in RabbitMQ")
    stage = StoreStage(store, queues, StoreMetrics(registry), metrics, writability, now=utc_now)
    worker = PartitionWorker(queues, worker_config(settings, Stream.TICKETS, "store"), stage, metrics)
    app = web.Application(middlewares=[json_errors])
    api = api_config(settings)
    warn_open_api(api)
    environ = dict(os.environ)  # the trackers' `*_env` credentials
    check_environ(policy, environ)
    app.add_routes(ticket_api(store, TicketQueries(engines), api))
    app.add_routes(tracker_routes(store, policy, environ))
    checks = {"broker": worker.ready, "store": store.ping, "store_writable": writability.ready}
    app.add_routes(health_routes(checks, registry))
    add_console(app, store, engines, settings)

    async def chores(_: web.Application) -> AsyncIterator[None]:
        async with background(store, engines, policy, settings, registry, utc_now, environ):
            yield

    app.cleanup_ctx.append(chores)
    return Process(app, link, worker.session, close=engines.dispose)
