"""`/healthz` (the process answers), `/readyz` (its dependencies answer) and `/metrics`, served by every process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

Check = Callable[[], Awaitable[bool]]


def health_routes(
    checks: Mapping[str, Check], registry: CollectorRegistry, *, timeout: float = 2.0
) -> list[web.RouteDef]:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        results = await asyncio.gather(*(_bounded(check, timeout) for check in checks.values()))
        status = dict(zip(checks, results, strict=True))
        ready = all(results)
        body = {"status": "ready" if ready else "unavailable", "checks": status}
        return web.json_response(body, status=200 if ready else 503)

    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", make_aiohttp_handler(registry)),
    ]


async def _bounded(check: Check, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):  # not wait_for: on 3.11 it can swallow a cancellation
            return await check()
    except Exception:
        return False
