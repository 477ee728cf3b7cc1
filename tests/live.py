"""`alertdesk run`'s app (embedded mode, a temp SQLite file) on a real port, served from a background thread.

Hypothesis and schemathesis drive synchronous clients, which would block a server sharing their event loop; a
thread with its own loop lets them talk to the real listening server. The app comes from `alertdesk` wiring
(`build_app`), so these tests see exactly what a user's `alertdesk run` serves.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from alertdesk.embedded_app import build_app
from alertdesk.settings import Settings


class LiveAlertdesk:
    """Start with `with LiveAlertdesk(tmp, **settings) as desk:`; `desk.url` is `http://127.0.0.1:<port>`.

    The database is a SQLite file in `directory` unless `database_url` says otherwise.
    """

    def __init__(self, directory: Path, **settings: Any) -> None:
        settings.setdefault("database_url", f"sqlite+aiosqlite:///{directory / 'alertdesk.db'}")
        self.settings = Settings(store_process=False, **settings)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-alertdesk", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveAlertdesk:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        app = await build_app(self.settings, registry=CollectorRegistry())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str | bytes] | None = None
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        """One request with headers sent as given (bytes too, unlike most clients allow)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, response.read(), response.headers
        finally:
            conn.close()

    def post_json(self, path: str, body: Any, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        status, raw, _ = self.request(
            "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
        )
        return status, json.loads(raw)

    def get_json(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        status, raw, _ = self.request("GET", path, None, headers)
        return status, json.loads(raw)
