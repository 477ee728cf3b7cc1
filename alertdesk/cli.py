"""The `alertdesk` command: parse flags, read settings once, configure logging, run one process kind."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from alertdesk import runtime
from alertdesk.bench import DEFAULT_STAGES
from alertdesk.bench import stages as bench_stages
from alertdesk.logs import configure_logging
from alertdesk.secret_files import InvalidSetting
from alertdesk.settings import Settings, describe
from normalizers.schema import AlertdeskError
from ticketstore.accounts import Role

logger = logging.getLogger("alertdesk")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alertdesk",
        description="Monitoring alerts (Nagios, Zabbix, SolarWinds Orion) to deduplicated incident tickets.",
        epilog=describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="the whole pipeline in one process (SQLite, in-process hand-off)")
    _server_flags(run)

    bench = commands.add_parser("bench", help="load-test a running alertdesk and check its tickets afterwards")
    bench.add_argument("--url", help="base URL of a running alertdesk (default: start `alertdesk run` here)")
    bench.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    bench.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    bench.add_argument("--keys", type=int, default=1000, help="distinct problems (default 1000)")
    bench.add_argument("--rate", type=float, default=0.0, help="target alerts/s; 0 = as fast as it goes")
    bench.add_argument(
        "--report-every",
        type=float,
        default=0.0,
        help="soak: print RSS, open files and database size every this many seconds (the started server only)",
    )
    bench.add_argument("--database-url", help="database the started alertdesk uses (default: a temporary SQLite file)")
    bench.add_argument(
        "--distributed",
        action="store_true",
        help="start ingest + dedup + store on RabbitMQ and PostgreSQL instead (ALERTDESK_BROKER_URL, --database-url)",
    )
    bench.add_argument(
        "--baseline",
        action="store_true",
        help="the machine's ceiling: a bare aiohttp server that only answers 202 (with --distributed: bare "
        "publish-with-confirm and consume on one quorum queue)",
    )
    bench.add_argument(
        "--compare",
        action="store_true",
        help="the bare server, embedded and distributed under the same load one after the other: rates, "
        "latencies, CPU per alert per process, ratios",
    )
    bench.add_argument(
        "--phases",
        default="bare,embedded,distributed,half",
        help="--compare: the phases to run, comma-separated (default bare,embedded,distributed,half; half: the "
        "distributed stack paced at half the rate its phase reached, for the latency targets)",
    )
    bench.add_argument(
        "--alerts", type=int, default=0, help="--distributed: a storm of this many problems, no recoveries"
    )
    bench.add_argument(
        "--stages",
        type=bench_stages,
        default=DEFAULT_STAGES,
        help=f"--distributed/--compare: processes per stage (default {DEFAULT_STAGES})",
    )

    for stage, what in (
        ("ingest", "the webhooks, publishing to RabbitMQ (ALERTDESK_BROKER_URL)"),
        ("dedup", "a dedup worker: folds the alerts of its partitions into ticket commands"),
        ("store", "a store worker: applies ticket commands to PostgreSQL; serves the ticket API"),
    ):
        stage_parser = commands.add_parser(stage, help=what)
        _server_flags(stage_parser)
        if stage != "ingest":
            stage_parser.add_argument("--worker-index", type=int, help="ALERTDESK_WORKER_INDEX (default 0)")
            stage_parser.add_argument("--worker-count", type=int, help="ALERTDESK_WORKER_COUNT (default 1)")

    backup = commands.add_parser(
        "backup", help="copy the SQLite database of `alertdesk run` to FILE, consistently, even while it runs"
    )
    backup.add_argument("file", metavar="FILE", help="where the copy goes (replaced once complete)")
    backup.add_argument("--database-url", help="the database to copy (ALERTDESK_DATABASE_URL)")
    restore = commands.add_parser(
        "restore", help="put a backup FILE in place of the SQLite database (refused while alertdesk runs on it)"
    )
    restore.add_argument("file", metavar="FILE", help="a file written by `alertdesk backup`")
    restore.add_argument("--database-url", help="the database to replace (ALERTDESK_DATABASE_URL)")
    from alertdesk.maintenance import add_parser as maintenance_parser

    maintenance_parser(commands)
    people = commands.add_parser("users", help="the web console's accounts (in the ticket database)")
    people.add_argument("--database-url", help="SQLAlchemy URL (ALERTDESK_DATABASE_URL)")
    people_actions = people.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = people_actions.add_parser("add", help="add a person (password twice on a terminal, else one stdin line)")
    add.add_argument("name")
    add.add_argument("--role", choices=("viewer", "operator"), default="operator", help="default operator")
    people_actions.add_parser("list", help="name, role and creation time of everyone")
    people_actions.add_parser("passwd", help="set a new password (ends that person's sessions)").add_argument("name")
    people_actions.add_parser("remove", help="remove a person and end their sessions").add_argument("name")

    dead = commands.add_parser("dead-letters", help="list or replay the dead-letter queue (distributed mode)")
    dead_actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    dead_actions.add_parser("list", help="show each dead letter: message id, stage, reason")
    replay = dead_actions.add_parser("replay", help="publish dead letters again where they came from")
    replay.add_argument("--id", action="append", dest="ids", help="message id to replay (repeatable; default: all)")
    return parser


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (ALERTDESK_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (ALERTDESK_PORT, default 8080)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (ALERTDESK_DATABASE_URL)")
    parser.add_argument("--policy", help="escalation policy YAML (ALERTDESK_POLICY)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (ALERTDESK_LOG_LEVEL)")


def _settings(args: argparse.Namespace) -> Settings:
    flags = ("host", "port", "database_url", "policy", "log_level", "worker_index", "worker_count")
    overrides: dict[str, Any] = {k: getattr(args, k) for k in flags if getattr(args, k, None) is not None}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bench" and args.compare:
        from alertdesk.bench.compare import compare

        return compare(args)
    if args.command == "bench" and args.distributed:
        from alertdesk.bench.distributed import bench_distributed

        return bench_distributed(args)
    if args.command == "bench":
        from alertdesk.bench.embedded import bench

        result: int = bench(args)
        return result
    try:
        settings = _settings(args)
    except (ValidationError, InvalidSetting) as exc:
        print(f"alertdesk: invalid setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "run":
            return runtime.run(lambda: _run(settings))
        if args.command in ("ingest", "dedup", "store"):
            from alertdesk.distributed import run_stage

            return runtime.run(lambda: run_stage(args.command, settings))
        if args.command in ("backup", "restore"):
            from alertdesk import backup

            done = (
                backup.backup(settings.database_url, Path(args.file))
                if args.command == "backup"
                else backup.restore(Path(args.file), settings.database_url)
            )
            print(done)
            return 0
        if args.command == "maintenance":
            from alertdesk.maintenance import maintenance

            return runtime.run(lambda: maintenance(settings, args))
        if args.command == "users":
            from alertdesk.users import users

            return runtime.run(lambda: users(settings, args.action, getattr(args, "name", None), args_role(args)))
        if args.command == "dead-letters":
            from alertdesk.deadletters import dead_letters

            return runtime.run(lambda: dead_letters(settings, args.action, getattr(args, "ids", None)))
    except AlertdeskError as exc:
        logger.error("%s", exc)
        return 2
    raise AssertionError(args.command)


async def _run(settings: Settings) -> int:
    from alertdesk.dblock import lock_database
    from alertdesk.embedded_app import build_app
    from alertdesk.server import serve

    lock = lock_database(settings.database_url)
    try:
        app = await build_app(settings, registry=CollectorRegistry())
        await serve(app, settings.host, settings.port, access_log=settings.access_log)
    finally:
        if lock is not None:
            lock.close()
    return 0


def args_role(args: argparse.Namespace) -> Role:
    role: Role = getattr(args, "role", None) or "operator"
    return role


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
