"""`alertdesk bench --baseline`: what this machine can do at best, for reading the benchmark's figures.

Embedded: an aiohttp server on the same runtime as `alertdesk run` (uvloop, tuned GC) that reads each webhook's
body and answers the same kind of 202, and does nothing else: no parsing, no normalizing, no store. Driven by the
same load generator on the same cores, its figures are the ceiling every embedded figure on that machine sits under.

Distributed (`--distributed --baseline`): one leg of the broker as alertdesk uses it, bare: persistent messages of
an alert's size published with confirms into one quorum queue by `--connections` concurrent publishers, consumed
and acknowledged as they come. An alert crosses two such legs (alerts, then ticket commands).

So two machines' runs can be compared, and a target checked against what the hardware allows at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid

import aio_pika
from aiohttp import web

from alertdesk import runtime
from alertdesk.bench.loadgen import percentile
from alertdesk.server import serve

ALERT_SIZE = 700  # bytes: an alert as alertdesk publishes it, JSON


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


async def broker(url: str, seconds: float, publishers: int) -> int:
    """Publish with confirms for `seconds`, consume alongside; print the rates and the confirm latency."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=256)
        name = f"alertdesk-baseline-{uuid.uuid4().hex[:8]}"
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        consumed, published, all_in = 0, -1, asyncio.Event()  # published: known once publishing stopped

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal consumed
            await message.ack()
            consumed += 1
            if consumed == published:
                all_in.set()

        consumer = await consuming.get_queue(name)
        tag = await consumer.consume(on_message)
        latencies: list[float] = []
        body = b"x" * ALERT_SIZE
        started = time.perf_counter()
        deadline = started + seconds

        async def publisher() -> None:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=name, mandatory=True)
                latencies.append(time.perf_counter() - sent)

        try:
            await asyncio.gather(*(publisher() for _ in range(publishers)))
            elapsed = time.perf_counter() - started
            published = len(latencies)
            if consumed < published:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        await all_in.wait()
            drained = time.perf_counter() - started
        finally:
            await consumer.cancel(tag)
            await queue.delete(if_unused=False, if_empty=False)
    print(f"broker leg      {publishers} publishers with confirms into quorum queue {name}, {seconds:g}s")
    print(f"published       {len(latencies) / elapsed:,.0f} messages/s confirmed")
    print(f"consumed        {consumed / drained:,.0f} messages/s acknowledged ({consumed} of {len(latencies)})")
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    print(f"confirm latency p50 {p50:.1f} ms   p99 {p99:.1f} ms")
    print("check           none: a baseline keeps no tickets (an alert crosses two such legs)")
    return 0 if consumed == len(latencies) else 1


def main() -> None:
    port = int(sys.argv[1])
    runtime.run(lambda: serve(app(), "127.0.0.1", port))


if __name__ == "__main__":
    main()
