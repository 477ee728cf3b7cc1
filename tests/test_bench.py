"""`alertdesk bench` as the README tells users to run it: it starts the server, drives it, checks the tickets.

Only what the command prints and returns is asserted, never how fast: figures come from real runs, not tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest

from tests.conftest import AMQP_URL

pytestmark = pytest.mark.slow


def bench(*flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALERTDESK_BROKER_URL": AMQP_URL}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "alertdesk.cli",
            "bench",
            "--duration",
            "2",
            "--keys",
            "60",
            "--connections",
            "8",
            *flags,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def figure(output: str, line: str) -> float:
    found = re.search(rf"^{line} +([\d,.]+)", output, re.MULTILINE)
    assert found, output
    return float(found.group(1).replace(",", ""))


def test_bench_checks_every_key_s_tickets_against_the_202s_it_counted(tmp_path: Path) -> None:
    done = bench(cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "check           OK: every key's tickets match the 202s" in done.stdout
    problems = re.search(r"occurrences (\d+) for (\d+) problems answered 202", done.stdout)
    assert problems and problems.group(1) == problems.group(2) and int(problems.group(2)) > 0, done.stdout
    assert figure(done.stdout, "throughput") > 0


def test_baseline_drives_a_bare_server_and_says_it_checks_nothing(tmp_path: Path) -> None:
    done = bench("--baseline", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "check           none: the baseline keeps no tickets" in done.stdout
    statuses = re.search(r"status codes +\{202: (\d+)\}", done.stdout)
    assert statuses and int(statuses.group(1)) > 0, done.stdout


async def test_broker_baseline_publishes_with_confirms_consumes_everything_and_leaves_no_queue(tmp_path: Path) -> None:
    done = await asyncio.to_thread(bench, "--distributed", "--baseline", "--connections", "4", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    consumed = re.search(r"acknowledged \((\d+) of (\d+)\)", done.stdout)
    assert consumed and consumed.group(1) == consumed.group(2) and int(consumed.group(2)) > 0, done.stdout
    assert figure(done.stdout, "published") > 0
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        name = re.search(r"queue (alertdesk-baseline-\w+)", done.stdout)
        assert name, done.stdout
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(name.group(1), passive=True)
