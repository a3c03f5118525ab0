"""A small TCP load balancer for the fault drill, in the test process.

Each new connection goes to the next backend in turn that accepts it (a backend that refuses is
skipped, as nginx's ``proxy_next_upstream`` does); bytes are piped both ways until either side
closes. ``drop(i)`` takes a dead backend out of the rotation and closes the connections that
were going to it, as a real balancer sees a dead upstream's sockets end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

__all__ = ["Balancer"]


class Balancer:
    def __init__(self, backends: list[int]) -> None:
        self.backends = list(backends)
        self.alive = set(range(len(backends)))
        self.served: set[int] = set()  # which backends got at least one connection
        self._turn = itertools.count()
        self._pipes: dict[int, set[asyncio.StreamWriter]] = {i: set() for i in self.alive}
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    async def start(cls, backends: list[int]) -> Balancer:
        balancer = cls(backends)
        balancer._server = await asyncio.start_server(balancer._accept, "127.0.0.1", 0)
        balancer.port = balancer._server.sockets[0].getsockname()[1]
        return balancer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop(self, index: int) -> None:
        self.alive.discard(index)
        for writer in list(self._pipes[index]):
            writer.close()

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            index = next(self._turn) % len(self.backends)
            if index not in self.alive:
                continue
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.backends[index])
                return index, reader, writer
        return None

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        picked = await self._connect()
        if picked is None:
            client_w.close()
            return
        index, up_r, up_w = picked
        self.served.add(index)
        self._pipes[index].update((client_w, up_w))
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self._pipes[index].difference_update((client_w, up_w))
            for writer in (client_w, up_w):
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for pipes in self._pipes.values():
                for writer in list(pipes):
                    writer.close()
            await self._server.wait_closed()
