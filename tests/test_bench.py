"""`alertdesk bench` as the README tells users to run it: it starts the server, drives it, checks the tickets.

Only what the command prints and returns is asserted, never how fast: figures come from real runs, not tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def bench(*flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
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


def test_baseline_does_not_go_with_distributed(tmp_path: Path) -> None:
    done = bench("--baseline", "--distributed", cwd=tmp_path)

    assert done.returncode == 2
    assert "--baseline" in done.stderr and "--distributed" in done.stderr
