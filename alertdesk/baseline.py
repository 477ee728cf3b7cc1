"""`alertdesk bench --baseline`: what this machine can do at best, for reading the benchmark's figures.

An aiohttp server on the same runtime as `alertdesk run` (uvloop, tuned GC) that reads each webhook's body and
answers the same kind of 202, and does nothing else: no parsing, no normalizing, no store. Driven by the same
load generator on the same cores, its figures are the ceiling every alertdesk figure on that machine sits under,
so two machines' runs can be compared, and a target can be checked against what the hardware allows at all.
"""

from __future__ import annotations

import sys

from aiohttp import web

from alertdesk import runtime
from alertdesk.server import serve


async def _accept(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"status": "accepted", "bytes": len(body)}, status=202)


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def app() -> web.Application:
    application = web.Application()
    application.router.add_post("/webhooks/{source}", _accept)
    application.router.add_get("/healthz", _healthz)
    return application


def main() -> None:
    port = int(sys.argv[1])
    runtime.run(lambda: serve(app(), "127.0.0.1", port))


if __name__ == "__main__":
    main()
