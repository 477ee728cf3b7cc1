"""`alertdesk bench`: load generators, the embedded and distributed benchmarks, and the machine's baselines.

Nothing here runs in production; it measures the processes that do, from outside, as a sender would.
"""

from __future__ import annotations

import argparse

STAGES = ("ingest", "dedup", "store")
DEFAULT_STAGES = "ingest=1,dedup=1,store=1"  # on a 2-core machine a second ingest costs more than it adds


def stages(text: str) -> list[tuple[str, int]]:
    """`--stages ingest=2,dedup=1,store=1` → processes per stage, in start order; every stage at least once."""
    counts: dict[str, int] = {}
    for item in text.split(","):
        stage, _, count = item.partition("=")
        if stage.strip() not in STAGES or not count.strip().isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"{item!r} is not STAGE=N with STAGE one of {', '.join(STAGES)} and N ≥ 1")
        counts[stage.strip()] = int(count)
    missing = [stage for stage in STAGES if stage not in counts]
    if missing:
        raise argparse.ArgumentTypeError(f"no count for {', '.join(missing)}")
    return [(stage, counts[stage]) for stage in STAGES]
