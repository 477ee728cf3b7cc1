"""`alertdesk bench`: drive a running alertdesk with a realistic alert mix, then check every ticket against it.

The load generator is this process; the server under test is `alertdesk run` started as a child on its shipped
defaults (or any `--url`). Each key belongs to one connection, so its events arrive in a known order and the
expected tickets can be computed exactly: for every key, the occurrences of its tickets must add up to the
problems that were answered 202, and it must have one ticket per problem episode.

Mix (`alertdesk.bench.loadgen`): the three sources in equal parts over `--keys` problems; a key with no open problem
gets a new one; an open one gets a repeat (~80% of all alerts) or, one time in ten, its recovery.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from alertdesk import runtime
from alertdesk.bench.loadgen import (
    Key,
    Ports,
    dedup_key,
    fleet,
    percentile,
    read_response,
    request,
    stagger,
    wait_answering,
)
from alertdesk.bench.soak import Soak
from ticketstore.db import sqlite_file

FLAPPING_CYCLES = 3  # the shipped policy: 3 open/resolve cycles within 1 h make a key flap (CONTRACT §2)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


async def _connection(
    host: str,
    port: int,
    keys: list[Key],
    deadline: float,
    pace: float,
    tally: Tally,
    seq: list[int],
    offset: float = 0.0,
) -> None:
    """One keep-alive connection sending a request every `pace` seconds (0: as soon as answered). Paced connections
    start `offset` apart (`stagger`), as independent senders do, not 64 requests in the same instant per period."""
    reader, writer = await asyncio.open_connection(host, port)
    rng = random.Random(keys[0].index if keys else 0)
    next_at = time.perf_counter() + offset - pace
    try:
        while time.perf_counter() < deadline:
            if pace:
                next_at += pace
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            key = rng.choice(keys)
            problem = key.next_is_problem(rng)
            seq[0] += 1
            started = time.perf_counter()
            writer.write(request(host, key, problem, seq[0]))
            status, _ = await read_response(reader)
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[status] += 1
            key.answered(problem, status == 202)
    finally:
        writer.close()


async def _tickets(host: str, port: int) -> list[dict[str, object]]:
    from aiohttp import ClientSession

    out: list[dict[str, object]] = []
    cursor: str | None = None
    async with ClientSession(f"http://{host}:{port}") as session:
        while True:
            params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
            async with session.get("/api/tickets", params=params) as resp:
                page = await resp.json()
            out.extend(page["tickets"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out


async def _drive(host: str, port: int, args: argparse.Namespace, soak: Soak | None = None) -> int:
    keys = fleet(args.keys)
    conns = max(1, args.connections)
    shards = [keys[c::conns] for c in range(conns)]
    tally, seq = Tally(), [0]
    pace = conns / args.rate if args.rate else 0.0
    started = time.perf_counter()
    deadline = started + args.duration
    reporter = asyncio.create_task(soak.report()) if soak is not None else None  # cancelled once the load ends
    await asyncio.gather(
        *(
            _connection(host, port, shard, deadline, pace, tally, seq, stagger(pace, c, conns))
            for c, shard in enumerate(shards)
            if shard
        )
    )
    elapsed = time.perf_counter() - started
    if soak is not None and reporter is not None:
        reporter.cancel()
        print(soak.final(elapsed), flush=True)
    total = sum(tally.statuses.values())
    print(f"requests        {total} in {elapsed:.1f}s from {conns} connections over {args.keys} keys")
    print(f"throughput      {tally.statuses[202] / elapsed:,.0f} alerts/s accepted (202)")
    print(
        f"202 latency     p50 {percentile(tally.latencies, 0.5) * 1000:.1f} ms   p99 {percentile(tally.latencies, 0.99) * 1000:.1f} ms"
    )
    print(f"status codes    {dict(sorted(tally.statuses.items()))}")
    if args.baseline:
        print("check           none: the baseline keeps no tickets (these figures are the machine's ceiling)")
        return 0 if tally.statuses[202] == total else 1

    tickets = await _tickets(host, port)
    by_key: dict[str, list[dict[str, object]]] = {}
    for ticket in tickets:
        by_key.setdefault(str(ticket["dedup_key"]), []).append(ticket)
    wrong = 0
    for key in keys:
        got = by_key.get(dedup_key(key), [])
        occurrences = sum(int(str(t["occurrences"])) for t in got)
        # A run is shorter than the flapping window: from the 4th episode on the key flaps, and its latest ticket
        # stays active instead of new ones opening.
        expected_tickets = min(key.episodes, FLAPPING_CYCLES)
        if occurrences != key.problems or len(got) != expected_tickets:
            wrong += 1
            if wrong <= 5:
                print(
                    f"MISMATCH {dedup_key(key)}: {len(got)} tickets / {occurrences} occurrences, "
                    f"expected {expected_tickets} / {key.problems}"
                )
    accepted = sum(k.problems for k in keys)
    print(
        f"tickets         {len(tickets)}; occurrences {sum(int(str(t['occurrences'])) for t in tickets)} "
        f"for {accepted} problems answered 202"
    )
    print("check           " + ("OK: every key's tickets match the 202s" if not wrong else f"FAILED on {wrong} keys"))
    return 0 if not wrong else 1


def bench(args: argparse.Namespace) -> int:
    if args.url:
        parsed = urllib.parse.urlsplit(args.url)
        return runtime.run(lambda: _drive(parsed.hostname or "127.0.0.1", parsed.port or 80, args))
    with tempfile.TemporaryDirectory(prefix="alertdesk-bench-") as tmp:
        port = Ports().take()
        env = {**os.environ, "ALERTDESK_PORT": str(port), "ALERTDESK_LOG_LEVEL": "WARNING"}
        env["ALERTDESK_DATABASE_URL"] = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        server = ["alertdesk.bench.baseline", str(port)] if args.baseline else ["alertdesk.cli", "run"]
        child = subprocess.Popen([sys.executable, "-m", *server], env=env, cwd=tmp)
        try:
            wait_answering(child, port, "/healthz", timeout=30)
            database = sqlite_file(env["ALERTDESK_DATABASE_URL"])
            soak = (
                Soak(child.pid, Path(database) if database else None, args.report_every) if args.report_every else None
            )
            return runtime.run(lambda: _drive("127.0.0.1", port, args, soak))
        finally:
            child.terminate()
            child.wait(timeout=30)
