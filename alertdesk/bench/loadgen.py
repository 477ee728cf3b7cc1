"""What a monitoring fleet sends, for the benchmarks and the load tests: keys, their alert mix, the request bytes.

Each key is driven by one connection, so its alerts arrive in order and what was answered 202 for it says exactly
which tickets it must have. Mix: the three sources in equal parts; a key with no open problem gets a new one, an
open one a repeat or, one time in ten, its recovery.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("nagios", "zabbix", "solarwinds")
RECOVERY_SHARE = 0.1


@dataclass
class Key:
    """One problem source (a Nagios service, a Zabbix trigger, an Orion object) and what was accepted for it."""

    index: int
    source: str
    episode: int = 0  # numbers the problem ids: a new episode is a new problem at the source
    open: bool = False
    problems: int = 0  # problems answered 202
    episodes: int = 0  # episodes opened by a problem answered 202

    def next_is_problem(self, rng: random.Random, *, max_episodes: int | None = None) -> bool:
        """Problem or recovery, as the mix says; no recovery once the key is in its `max_episodes`-th episode (a
        test that must not flap, a storm)."""
        capped = max_episodes is not None and self.episode >= max_episodes
        problem = not self.open or capped or rng.random() >= RECOVERY_SHARE
        if problem and not self.open:
            self.episode += 1
        return problem

    def answered(self, problem: bool, accepted: bool) -> None:
        """Count what the server answered 202; a problem it refused did not start an episode."""
        if not accepted:
            if problem and not self.open:
                self.episode -= 1
            return
        if problem:
            self.problems += 1
            self.episodes += 0 if self.open else 1
        self.open = problem


def fleet(count: int) -> list[Key]:
    return [Key(i, SOURCES[i % 3]) for i in range(count)]


def body(key: Key, problem: bool) -> dict[str, str]:
    """One alert of the mix as its source would send it: Nagios's macros, Zabbix's media-type parameters, Orion's."""
    i, ep = key.index, 1000 * key.index + key.episode
    if key.source == "nagios":
        return {
            "NOTIFICATIONTYPE": "PROBLEM" if problem else "RECOVERY",
            "HOSTNAME": f"web-{i:04d}",
            "SERVICEDESC": "Disk /var",
            "SERVICESTATE": "CRITICAL" if problem else "OK",
            "SERVICEOUTPUT": "DISK CRITICAL - free space: /var 812 MB (3.9% inode=88%);" if problem else "DISK OK",
            "SERVICEPROBLEMID": str(ep) if problem else "0",
            "LASTSERVICEPROBLEMID": "0" if problem else str(ep),
            "pd_nagios_object": "service",
        }
    if key.source == "zabbix":
        return {
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
    return {
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


def request(host: str, key: Key, problem: bool, seq: int) -> bytes:
    """One webhook request of the mix: Nagios as the form `pagerduty_nagios.pl` posts, Zabbix and Orion as JSON."""
    fields = body(key, problem)
    if key.source == "nagios":
        data, ctype = urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"
    else:
        data, ctype = json.dumps(fields).encode(), "application/json"
    head = (
        f"POST /webhooks/{key.source} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(data)}\r\nIdempotency-Key: bench-{os.getpid()}-{seq}\r\n\r\n"
    )
    return head.encode() + data


def dedup_key(key: Key) -> str:
    """The dedup key the normalizers make of `request`'s alerts for this key."""
    if key.source == "nagios":
        return f"nagios:web-{key.index:04d}/Disk /var"
    if key.source == "zabbix":
        return f"zabbix:trigger/{20000 + key.index}"
    return f"solarwinds:{key.index + 1}"


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response: a raw connection costs the load generator less than a client."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(m.group(1)) if (m := re.search(rb"(?i)content-length: *(\d+)", head)) else 0
    return int(head[9:12]), await reader.readexactly(length)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Ports:
    """Free ports for the processes a test or benchmark starts.

    Picked below the kernel's ephemeral range (32768 and up), so no outgoing connection can take one between the
    pick and the child's bind, and never the same one twice from one picker: asking the kernel for port 0 gave two
    children the same port once. Pickers in different processes start at different places.
    """

    FIRST, LAST = 20000, 32000

    def __init__(self) -> None:
        self._next = self.FIRST + os.getpid() * 37 % (self.LAST - self.FIRST)

    def take(self) -> int:
        for _ in range(self.LAST - self.FIRST):
            port = self._next
            self._next = port + 1 if port + 1 < self.LAST else self.FIRST
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise OSError(f"no free port in {self.FIRST}-{self.LAST}")


def wait_answering(
    child: subprocess.Popen[bytes], port: int, path: str, timeout: float, log: Path | None = None
) -> None:
    """Until the alertdesk process `child` answers 200 on `path` (its health or readiness), or give up.

    `log`: where the child writes, quoted (its last lines) if it exits: its directory is gone after the run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            said = log.read_text(errors="replace").strip().splitlines()[-10:] if log and log.exists() else []
            raise SystemExit("\n".join([f"alertdesk on port {port} exited with {child.returncode}", *said]))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:  # refused while starting, or an HTTPError: not ready yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"alertdesk on port {port} did not answer {path} within {timeout:g}s")


def stagger(pace: float, connection: int, connections: int) -> float:
    """Where in each period a paced connection sends: spread evenly, so the offered load is smooth."""
    return pace * connection / connections
