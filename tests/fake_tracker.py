"""What the fake trackers share: a real aiohttp server on 127.0.0.1 that records every request and that tests
drive into failures — answers queued up front (429 with Retry-After, 503), a create whose answer is lost after the
record was made, a slow server, refused credentials. Each tracker's fake adds its routes and its error shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Any]


@dataclass
class FakeTracker:
    port: int
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, answered status
    queued: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # next answers: status, headers
    lose_create_answers: int = 0  # creates whose answer is lost after the record was made
    delay: float = 0.0  # seconds before each answer
    hold_creates: asyncio.Event | None = None  # a create waits for it after making the record
    server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        app = web.Application()
        self.routes(app, self._guarded)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()
        return self

    async def stop(self) -> None:
        if self.hold_creates is not None:
            self.hold_creates.set()
        if self.server is not None:
            await self.server.close()

    # --- what each tracker's fake says ------------------------------------------------------------------------

    def routes(self, app: web.Application, guarded: Callable[[Handler], Handler]) -> None:
        raise NotImplementedError

    def authorized(self, request: web.Request) -> bool:
        raise NotImplementedError

    def refusal(self, status: int, headers: dict[str, str]) -> web.Response:
        """A queued failure (429, 503, …) in the tracker's error shape."""
        raise NotImplementedError

    def unauthenticated(self) -> web.Response:
        raise NotImplementedError

    def intercept(self, request: web.Request) -> web.Response | None:
        """An answer given before anything else (a hibernating instance); None: none."""
        return None

    # --- shared -----------------------------------------------------------------------------------------------

    async def created(self, request: web.Request) -> web.StreamResponse | None:
        """After a create made its record: wait while creates are held; drop the connection when its answer is to be
        lost (that answer, else None)."""
        if self.hold_creates is not None:
            await self.hold_creates.wait()
        if not self.lose_create_answers:
            return None
        self.lose_create_answers -= 1
        assert request.transport is not None
        request.transport.close()  # the record exists; its answer never arrives
        return web.Response(status=201)

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            if self.delay:
                await asyncio.sleep(self.delay)
            answer: web.StreamResponse | None = self.intercept(request)
            if answer is None and self.queued:
                status, headers = self.queued.pop(0)
                answer = self.refusal(status, headers)
            if answer is None and not self.authorized(request):
                answer = self.unauthenticated()
            if answer is None:
                answer = await handler(request)
            self.requests.append((request.method, request.path, answer.status))
            return answer

        return run
