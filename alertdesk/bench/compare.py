"""`alertdesk bench --compare`: the bare server, embedded and distributed under the same load, one after the other.

Targets are ratios measured side by side, so they mean the same on any machine of a size. Each phase starts its
processes, waits until they answer, reads the CPU time of every process involved from /proc, drives the same load
(`--duration`, `--connections`, `--keys`, `--rate`, the mix of `alertdesk bench`) and reads /proc again. It prints
the rate (distributed: end to end, first request → last alert applied), the p50/p99 of the 202, the CPU per alert
of each process (the load generator, this process, included, with its share of a core so one can see it does not
limit the figure) and the ratios distributed/embedded and embedded/bare. The `half` phase runs the distributed
stack again, paced at half the rate the distributed phase just reached, and prints its 202 and alert→ticket p99
against their targets: "half the distributed maximum" measured on the machine as it is at that moment. RabbitMQ
and PostgreSQL are the machine's shared servers: their CPU includes whatever else runs there. Correctness is what `alertdesk bench` and
`alertdesk bench --distributed` check; this command only measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alertdesk import runtime
from alertdesk.bench import distributed
from alertdesk.bench.embedded import Tally, _connection
from alertdesk.bench.loadgen import Ports, fleet, percentile, stagger, wait_answering
from alertdesk.settings import Settings
from dedup.rabbitmq.topology import DEFAULT_PARTITIONS
from ticketstore.db import create_schema

TICK = os.sysconf("SC_CLK_TCK")
Pids = Callable[[], dict[str, list[int]]]  # process name → its pids, read when the CPU is sampled


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float  # alerts/s (distributed: end to end)
    p50: float
    p99: float
    cpu: dict[str, float]  # process name → CPU seconds during the phase
    alerts: int
    seconds: float
    note: str = ""
    ticket_p99: float = float("nan")  # distributed: seconds from an alert's arrival to its ticket change (news)


PHASES = ("bare", "embedded", "distributed", "half")
HALF_RATE_TARGETS = (0.025, 0.100)  # 202 p99, alert→ticket p99 (seconds) at half the distributed rate


def compare(args: argparse.Namespace) -> int:
    """`args.phases`: a comma-separated subset of `PHASES` (run in that order); a ratio needs both its phases."""
    wanted = [name.strip() for name in getattr(args, "phases", ",".join(PHASES)).split(",") if name.strip()]
    unknown = set(wanted) - set(PHASES)
    if unknown or not wanted:
        print(f"--phases: choose among {', '.join(PHASES)} (got {args.phases!r})", file=sys.stderr)
        return 2
    if "half" in wanted and "distributed" not in wanted:
        print("--phases: half runs at half the rate of the distributed phase: add distributed", file=sys.stderr)
        return 2
    settings = Settings()
    ports = Ports()
    phases: dict[str, Phase] = {}
    with tempfile.TemporaryDirectory(prefix="alertdesk-compare-") as tmp:
        for name in PHASES:
            if name not in wanted:
                continue
            if name == "distributed":
                phases[name] = _distributed(args, settings, Path(tmp), ports)
            elif name == "half":
                paced = argparse.Namespace(**{**vars(args), "rate": max(phases["distributed"].rate / 2, 1.0)})
                phases[name] = _distributed(paced, settings, Path(tmp), ports, name="half rate")
            else:
                module = ["alertdesk.bench.baseline"] if name == "bare" else ["alertdesk.cli", "run"]
                phases[name] = _single(name, module, args, Path(tmp), ports)
    load = f"{args.duration:g}s per phase, {args.connections} connections, {args.keys} keys, rate {args.rate or 'max'}"
    print(f"load            {load}")
    for phase in phases.values():
        print(_line(phase))
    rate = {name: p.rate for name, p in phases.items()}
    ratios = [
        f"{a}/{b} {_ratio(rate[a], rate[b])} (target ≥ {target:.2f})"
        for a, b, target in (("distributed", "embedded", 0.70), ("embedded", "bare", 0.50))
        if a in rate and b in rate
    ]
    if ratios:
        print(f"ratios          {'   '.join(ratios)}")
    if half := phases.get("half"):
        most_202, most_ticket = HALF_RATE_TARGETS
        print(
            f"half rate       {half.rate:,.0f} alerts/s: 202 p99 {half.p99 * 1e3:.1f} ms (target ≤ {most_202 * 1e3:.0f})"
            f"   alert→ticket p99 {half.ticket_p99 * 1e3:.0f} ms (target ≤ {most_ticket * 1e3:.0f})"
        )
    return 0 if all(p.alerts for p in phases.values()) else 1


def _line(phase: Phase) -> str:
    per_alert = ", ".join(f"{name} {seconds / max(phase.alerts, 1) * 1e6:,.0f}" for name, seconds in phase.cpu.items())
    loadgen = phase.cpu["load generator"] / phase.seconds
    return (
        f"{phase.name:<15} {phase.rate:,.0f} alerts/s   202 p50 {phase.p50 * 1e3:.1f} ms   p99 {phase.p99 * 1e3:.1f} ms"
        f"{phase.note}\n{'':<15} CPU µs per alert: {per_alert} (load generator {loadgen:.2f} of a core)"
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def _single(name: str, module: list[str], args: argparse.Namespace, tmp: Path, ports: Ports) -> Phase:
    """One server process (and its children: the embedded store writer) on a fresh SQLite file."""
    port = ports.take()
    env = {
        **os.environ,
        "ALERTDESK_PORT": str(port),
        "ALERTDESK_LOG_LEVEL": "WARNING",
        "ALERTDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / f'{name}.db'}",
    }
    argv = [sys.executable, "-m", *module, *([str(port)] if name == "bare" else [])]
    child = subprocess.Popen(argv, env=env, cwd=tmp)
    try:
        wait_answering(child, port, "/healthz", timeout=60)

        def pids() -> dict[str, list[int]]:
            return {"server": [child.pid], **({"writer": _children(child.pid)} if name == "embedded" else {})}

        with _cpu(pids) as cpu:
            tally, seconds = runtime.run(lambda: _drive(args, [port]))
        accepted = tally.statuses[202]
        return Phase(name, accepted / seconds, *_percentiles(tally), cpu, accepted, seconds)
    finally:
        _stop([child])


def _distributed(
    args: argparse.Namespace, settings: Settings, tmp: Path, ports: Ports, *, name: str = "distributed"
) -> Phase:
    """The processes of `--stages` on a fresh broker prefix and database schema, as `bench --distributed` starts them."""
    broker_url = settings.broker_url or distributed.DEFAULT_BROKER
    database_url = args.database_url or distributed.DEFAULT_DATABASE
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = distributed.stack_env(broker_url, database_url, prefix)
    runtime.run(lambda: create_schema(database_url, prefix))
    children: distributed.Children = {}
    try:
        distributed.start_stages(children, args.stages, env, tmp, ports)

        def pids() -> dict[str, list[int]]:
            ours = {
                f"{stage}{i if len(procs) > 1 else ''}": [child.pid]
                for stage, procs in children.items()
                for i, (child, _) in enumerate(procs)
            }
            return {**ours, "rabbitmq": _named("beam.smp"), "postgres": _named("postgres")}

        store_ports = [port for _, port in children["store"]]
        with _cpu(pids) as cpu:
            started = time.perf_counter()
            tally, seconds = runtime.run(lambda: _drive(args, [port for _, port in children["ingest"]]))
            distributed._wait_applied(store_ports, tally.statuses[202])
            end_to_end = time.perf_counter() - started
        accepted = tally.statuses[202]
        ticket_p99 = distributed._histogram_p99(store_ports, "alertdesk_alert_to_ticket_seconds")
        note = f"   alert→ticket p99 {ticket_p99 * 1e3:.0f} ms   (202s {accepted / seconds:,.0f}/s)"
        return Phase(name, accepted / end_to_end, *_percentiles(tally), cpu, accepted, end_to_end, note, ticket_p99)
    finally:
        _stop([child for stage_children in children.values() for child, _ in stage_children])
        runtime.run(
            lambda: distributed._cleanup(broker_url, prefix, settings.partitions or DEFAULT_PARTITIONS, database_url)
        )


async def _drive(args: argparse.Namespace, ports: list[int]) -> tuple[Tally, float]:
    """The load of `alertdesk bench`, its connections spread over `ports`; returns what it saw and for how long."""
    keys = fleet(args.keys)
    conns = max(1, args.connections)
    tally, seq = Tally(), [0]
    pace = conns / args.rate if args.rate else 0.0
    started = time.perf_counter()
    deadline = started + args.duration
    await asyncio.gather(
        *(
            _connection(
                "127.0.0.1", ports[c % len(ports)], keys[c::conns], deadline, pace, tally, seq, stagger(pace, c, conns)
            )
            for c in range(conns)
            if keys[c::conns]
        )
    )
    return tally, time.perf_counter() - started


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, and SIGKILL for a process still there 30 s later: a measurement must not hang on its teardown."""
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"process {child.pid} did not stop within 30 s of SIGTERM: killed", file=sys.stderr)
            child.kill()
            child.wait()


def _percentiles(tally: Tally) -> tuple[float, float]:
    return percentile(tally.latencies, 0.5), percentile(tally.latencies, 0.99)


@contextmanager
def _cpu(pids: Pids) -> Iterator[dict[str, float]]:
    """CPU seconds of each named process (and of this one, the load generator) while the block runs."""
    me = os.getpid()
    before = {pid: _cpu_seconds(pid) for pids_ in pids().values() for pid in pids_} | {me: _cpu_seconds(me)}
    used: dict[str, float] = {}
    yield used
    for name, named in {"load generator": [me], **pids()}.items():
        used[name] = sum(max(_cpu_seconds(pid) - before.get(pid, 0.0), 0.0) for pid in named)


def _cpu_seconds(pid: int) -> float:
    """User + system time of a process, all its threads (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _named(command: str) -> list[int]:
    """Every process whose command name is `command` (RabbitMQ's beam.smp, PostgreSQL's backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
