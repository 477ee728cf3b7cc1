"""A realistic alert load with known expectations, and the exactly-once check of what the pipeline made of it."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field

import aiohttp

from alertdesk.bench import loadgen
from tests.cluster import Pipeline, applied_count, eventually, post_until_accepted, query

MAX_EPISODES = 2  # a key resolved 3 times within the hour would be flapping: one ticket, not one per episode


@dataclass
class Key(loadgen.Key):
    """A key of the bench's mix, and the dedup key the pipeline answered for it."""

    dedup_key: str = ""


def keys(count: int) -> list[Key]:
    return [Key(i, loadgen.SOURCES[i % 3]) for i in range(count)]


@dataclass
class Load:
    """Alerts sent so far and the alert ids answered 202; each key is driven by one connection, in order."""

    sent: int = 0
    accepted: list[str] = field(default_factory=list)
    _waiting: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def count_one(self) -> None:
        self.sent += 1
        for n, event in self._waiting:
            if self.sent >= n:
                event.set()

    async def reached(self, n: int) -> None:
        """Wait until `n` alerts have been sent (to break something in the middle of a run)."""
        event = asyncio.Event()
        self._waiting.append((n, event))
        if self.sent >= n:
            event.set()
        await event.wait()


async def drive(
    base: str, load_keys: list[Key], total: int, load: Load, *, connections: int = 32, seed: int = 7
) -> None:
    """Send `total` alerts, retrying a 503 with the same Idempotency-Key as the shipped sender templates do."""

    async def connection(own: list[Key], rng: random.Random, session: aiohttp.ClientSession) -> None:
        while load.sent < total:
            load.count_one()
            key = rng.choice(own)
            problem = key.next_is_problem(rng, max_episodes=MAX_EPISODES)
            answer = await post_until_accepted(
                session, base, key.source, loadgen.body(key, problem), f"{seed}-{uuid.uuid4()}"
            )
            load.accepted.append(answer["alert_id"])
            key.dedup_key = answer["dedup_key"]
            key.answered(problem, accepted=True)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        shards = [load_keys[c::connections] for c in range(connections)]
        await asyncio.gather(*(connection(s, random.Random(seed + n), session) for n, s in enumerate(shards) if s))


async def check_exactly_once(pipeline: Pipeline, load_keys: list[Key], load: Load, within: float = 60.0) -> None:
    """Every alert answered 202 applied once (per alert id), and each key's tickets count exactly its problems."""

    async def drained() -> bool:
        return await applied_count(pipeline.schema) >= len(load.accepted)

    await eventually(drained, within, lambda: f"not drained: {len(load.accepted)} accepted\n{pipeline.logs()}")
    applied = [r["alert_id"] for r in await query(pipeline.schema, "SELECT alert_id FROM processed_alerts")]
    assert len(applied) == len(set(applied))
    assert set(applied) == set(load.accepted)
    rows = await query(
        pipeline.schema, "SELECT dedup_key, count(*) AS n, sum(occurrences) AS occ FROM tickets GROUP BY 1"
    )
    by_key = {r["dedup_key"]: (r["n"], r["occ"]) for r in rows}
    wrong = [k for k in load_keys if k.problems and by_key.get(k.dedup_key) != (k.episodes, k.problems)]
    assert not wrong, [(k.dedup_key, by_key.get(k.dedup_key), (k.episodes, k.problems)) for k in wrong[:5]]
