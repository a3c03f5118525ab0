"""A LISTEN connection that survives restarts of PostgreSQL: channel payloads to callbacks.

The worker listens for :data:`~server.jobs.queue.WAKE_CHANNEL`, the server for
:data:`~server.jobs.queue.EVENT_CHANNEL`. Kept apart from ``server.hub.bus.PgBus`` (the op-log
doorbell and presence), which a worker process does not run: one small class serves both.
Notifications sent while reconnecting are lost, so ``on_connect`` runs after each (re)connect
for the owner to catch up, and owners poll slowly as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import asyncpg

__all__ = ["Listener"]

log = logging.getLogger("labelhub.jobs")


class Listener:
    def __init__(self, dsn: str, channels: dict[str, Callable[[str], None]],
                 on_connect: Callable[[], None] | None = None, retry: float = 1.0) -> None:
        self.dsn, self.channels, self.on_connect, self.retry = dsn, channels, on_connect, retry
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jobs-listener")

    async def _once(self) -> None:
        conn: Any = await asyncpg.connect(self.dsn)
        closed = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: closed.set())
            for channel, callback in self.channels.items():
                await conn.add_listener(
                    channel, lambda _c, _pid, _ch, payload, cb=callback: cb(payload))
            self.connected.set()
            if self.on_connect is not None:
                self.on_connect()
            await closed.wait()
        finally:
            self.connected.clear()
            if not conn.is_closed():
                with suppress(Exception):
                    await conn.close()

    async def _run(self) -> None:
        while True:
            try:
                await self._once()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("jobs listener connection failed: %s; retrying", exc)
            await asyncio.sleep(self.retry)  # back off before reconnecting

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
