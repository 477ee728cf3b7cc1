"""`alertdesk bench`: drive a running alertdesk with a realistic alert mix, then check every ticket against it.

The load generator is this process; the server under test is `alertdesk run` started as a child on its shipped
defaults (or any `--url`). Each key belongs to one connection, so its events arrive in a known order and the
expected tickets can be computed exactly: for every key, the occurrences of its tickets must add up to the
problems that were answered 202, and it must have one ticket per problem episode.

Mix: the three sources in equal parts over `--keys` problems; a key with no open problem gets a new one; an open
one gets a repeat (~80% of all alerts) or, one time in ten, its recovery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from alertdesk import server

RECOVERY_SHARE = 0.1
FLAPPING_CYCLES = 3  # the shipped policy: 3 open/resolve cycles within 1 h make a key flap (CONTRACT §2)


@dataclass
class KeyState:
    index: int
    source: str
    episode: int = 0
    open: bool = False
    problems_accepted: int = 0
    episodes_opened: int = 0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


def _request(host: str, key: KeyState, kind: str, seq: int) -> bytes:
    """One webhook request as the source would send it (Nagios form, Zabbix and Orion JSON)."""
    i, ep = key.index, 1000 * key.index + key.episode
    problem = kind == "problem"
    if key.source == "nagios":
        fields = {
            "NOTIFICATIONTYPE": "PROBLEM" if problem else "RECOVERY",
            "HOSTNAME": f"web-{i:04d}",
            "SERVICEDESC": "Disk /var",
            "SERVICESTATE": "CRITICAL" if problem else "OK",
            "SERVICEOUTPUT": "DISK CRITICAL - free space: /var 812 MB (3.9% inode=88%);" if problem else "DISK OK",
            "SERVICEPROBLEMID": str(ep) if problem else "0",
            "LASTSERVICEPROBLEMID": "0" if problem else str(ep),
            "pd_nagios_object": "service",
        }
        body = urllib.parse.urlencode(fields).encode()
        ctype = "application/x-www-form-urlencoded"
    elif key.source == "zabbix":
        body = json.dumps(
            {
                "EVENT.SOURCE": "0",
                "EVENT.ID": str(ep),
                "EVENT.VALUE": "1" if problem else "0",
                "EVENT.UPDATE.STATUS": "0",
                "EVENT.NSEVERITY": "4",
                "EVENT.NAME": "High CPU utilization (over 90% for 5m)",
                "TRIGGER.ID": str(20000 + i),
                "HOST.HOST": f"db-{i:04d}",
                "HOST.NAME": f"db-{i:04d}.corp",
                "HOST.IP": f"10.1.{i // 250}.{i % 250}",
                "ALERT.SUBJECT": "Problem: High CPU utilization (over 90% for 5m)",
                "ALERT.MESSAGE": "Problem started at 03:00:00 on 2026.03.14\r\nProblem name: High CPU utilization",
                "EVENT.UPDATE.ACTION": "{EVENT.UPDATE.ACTION}",
            }
        ).encode()
        ctype = "application/json"
    else:
        body = json.dumps(
            {
                "event_type": "trigger" if problem else "reset",
                "AlertObjectID": str(i + 1),
                "AlertActiveID": str(ep),
                "AlertName": "Interface down",
                "AlertMessage": "Interface Gi1/0/24 on CORE-SW is down",
                "Severity": "Critical",
                "NodeName": f"CORE-SW-{i:04d}",
                "ObjectType": "Interface",
                "EntityCaption": "GigabitEthernet1/0/24",
            }
        ).encode()
        ctype = "application/json"
    head = (
        f"POST /webhooks/{key.source} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nIdempotency-Key: bench-{os.getpid()}-{seq}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str, port: int, keys: list[KeyState], deadline: float, pace: float, tally: Tally, seq: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    rng = random.Random(keys[0].index if keys else 0)
    next_at = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            if pace:
                next_at += pace
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            key = rng.choice(keys)
            kind = "recovery" if key.open and rng.random() < RECOVERY_SHARE else "problem"
            if kind == "problem" and not key.open:
                key.episode += 1
            seq[0] += 1
            started = time.perf_counter()
            writer.write(_request(host, key, kind, seq[0]))
            status = await _read_response(reader)
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[status] += 1
            if status == 202:
                if kind == "problem":
                    key.problems_accepted += 1
                    if not key.open:
                        key.episodes_opened += 1
                    key.open = True
                else:
                    key.open = False
            elif kind == "problem" and not key.open:
                key.episode -= 1  # not accepted: the episode did not start
    finally:
        writer.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


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


def _dedup_key(key: KeyState) -> str:
    if key.source == "nagios":
        return f"nagios:web-{key.index:04d}/Disk /var"
    if key.source == "zabbix":
        return f"zabbix:trigger/{20000 + key.index}"
    return f"solarwinds:{key.index + 1}"


async def _drive(host: str, port: int, args: argparse.Namespace) -> int:
    sources = ("nagios", "zabbix", "solarwinds")
    keys = [KeyState(i, sources[i % 3]) for i in range(args.keys)]
    conns = max(1, args.connections)
    shards = [keys[c::conns] for c in range(conns)]
    tally, seq = Tally(), [0]
    pace = conns / args.rate if args.rate else 0.0
    started = time.perf_counter()
    deadline = started + args.duration
    await asyncio.gather(*(_connection(host, port, shard, deadline, pace, tally, seq) for shard in shards if shard))
    elapsed = time.perf_counter() - started
    total = sum(tally.statuses.values())
    print(f"requests        {total} in {elapsed:.1f}s from {conns} connections over {args.keys} keys")
    print(f"throughput      {tally.statuses[202] / elapsed:,.0f} alerts/s accepted (202)")
    print(
        f"202 latency     p50 {_percentile(tally.latencies, 0.5) * 1000:.1f} ms   p99 {_percentile(tally.latencies, 0.99) * 1000:.1f} ms"
    )
    print(f"status codes    {dict(sorted(tally.statuses.items()))}")

    tickets = await _tickets(host, port)
    by_key: dict[str, list[dict[str, object]]] = {}
    for ticket in tickets:
        by_key.setdefault(str(ticket["dedup_key"]), []).append(ticket)
    wrong = 0
    for key in keys:
        got = by_key.get(_dedup_key(key), [])
        occurrences = sum(int(str(t["occurrences"])) for t in got)
        # A run is shorter than the flapping window: from the 4th episode on the key flaps, and its latest ticket
        # stays active instead of new ones opening.
        expected_tickets = min(key.episodes_opened, FLAPPING_CYCLES)
        if occurrences != key.problems_accepted or len(got) != expected_tickets:
            wrong += 1
            if wrong <= 5:
                print(
                    f"MISMATCH {_dedup_key(key)}: {len(got)} tickets / {occurrences} occurrences, "
                    f"expected {expected_tickets} / {key.problems_accepted}"
                )
    accepted = sum(k.problems_accepted for k in keys)
    print(
        f"tickets         {len(tickets)}; occurrences {sum(int(str(t['occurrences'])) for t in tickets)} "
        f"for {accepted} problems answered 202"
    )
    print("check           " + ("OK: every key's tickets match the 202s" if not wrong else f"FAILED on {wrong} keys"))
    return 0 if not wrong else 1


def bench(args: argparse.Namespace) -> int:
    if args.url:
        parsed = urllib.parse.urlsplit(args.url)
        return server.run(lambda: _drive(parsed.hostname or "127.0.0.1", parsed.port or 80, args))
    with tempfile.TemporaryDirectory(prefix="alertdesk-bench-") as tmp:
        port = _free_port()
        env = {**os.environ, "ALERTDESK_PORT": str(port), "ALERTDESK_LOG_LEVEL": "WARNING"}
        env["ALERTDESK_DATABASE_URL"] = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        child = subprocess.Popen([sys.executable, "-m", "alertdesk.cli", "run"], env=env, cwd=tmp)
        try:
            _wait_healthy(port, child)
            return server.run(lambda: _drive("127.0.0.1", port, args))
        finally:
            child.terminate()
            child.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(port: int, child: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"alertdesk run exited with {child.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(12).endswith(b"200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("alertdesk run did not answer /healthz in time")
