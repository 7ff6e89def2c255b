"""A plain TCP server that records connections, and a polling helper, for upstream tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Listener:
    """Accepts connections and keeps their writers; `closed` counts connections the peer closed."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.closed = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> Listener:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            try:
                while await reader.read(65536):
                    pass
            except ConnectionError:
                pass
            self.closed += 1

        self.server = await asyncio.start_server(on_client, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def accepted(self) -> int:
        return len(self.writers)

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
