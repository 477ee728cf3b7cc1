"""A TCP path to a shared server that a test can cut or hang, without touching the server itself."""

from __future__ import annotations

import asyncio

from tests.process import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; `stop` refuses new connections and cuts open ones, as if the server
    went down, without touching the shared server itself."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.flowing = asyncio.Event()  # cleared: bytes are held, connections stay open (a hung server)
        self.flowing.set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        pipes = (self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        await asyncio.gather(*pipes, return_exceptions=True)
        self._open.difference_update((writer, up_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
