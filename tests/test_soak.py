"""`alertdesk bench --report-every`: the soak lines come out while the load runs, with real figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_bench import bench

pytestmark = pytest.mark.slow

SOAK = re.compile(r"^soak +(\d+)s  rss MB (\d+) \+ (\d+)  open files (\d+)  database ([\d.]+) MB$", re.MULTILINE)


def test_bench_prints_memory_open_files_and_database_size_per_interval(tmp_path: Path) -> None:
    done = bench("--rate", "200", "--report-every", "0.5", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = SOAK.findall(done.stdout)
    assert len(lines) >= 4, done.stdout  # at 0, 0.5, 1, 1.5 s and the last one after the load
    for _, server_mb, writer_mb, files, _ in lines:
        assert int(server_mb) > 10 and int(writer_mb) > 10  # the server and its store writer, both alive
        assert int(files) > 3
    assert float(lines[-1][4]) > 0
    assert "check           OK" in done.stdout
