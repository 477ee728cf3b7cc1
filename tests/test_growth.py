"""The disk-sizing script runs and reports what it stored (the README quotes a larger run of it)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import PG_URL


def test_growth_script_reports_bytes_per_alert() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.growth", "--alerts", "3000", "--keys", "300"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "'processed_alerts': 3000" in run.stdout, run.stdout
    per_alert = re.search(r"bytes per alert: (\d+) \(without processed ids (\d+)\)", run.stdout)
    assert per_alert is not None, run.stdout
    total, without_ids = map(int, per_alert.groups())
    assert 0 < without_ids < total < 10_000
    assert re.search(r"per million alerts: \d+ MiB", run.stdout)


def test_growth_script_measures_postgresql_too() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.growth", "--alerts", "3000", "--keys", "300", "--database-url", PG_URL],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "'processed_alerts': 3000" in run.stdout, run.stdout
    per_alert = re.search(r"bytes per alert: (\d+) \(without processed ids (\d+)\)", run.stdout)
    assert per_alert is not None, run.stdout
    total, without_ids = map(int, per_alert.groups())
    assert 0 < without_ids < total < 10_000
    assert re.search(r"before VACUUM FULL: \d+ bytes per alert", run.stdout)
