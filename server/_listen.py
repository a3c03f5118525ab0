"""A LISTEN connection that survives restarts of PostgreSQL: channel payloads to callbacks.

The job worker listens for :data:`~server.jobs.queue.WAKE_CHANNEL`, the server for
:data:`~server.jobs.queue.EVENT_CHANNEL` and, in ``server.hub.bus.PgBus``, for the op-log
doorbell, presence and revocations: one reconnecting loop serves them all.
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

__all__ = ["Listener", "asyncpg_dsn"]


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Listener:
    """``channels``: a callback per channel, given the payload; ``senders``: a callback per
    channel given the sending backend's pid as well (notifications of one transaction share it).
    Callbacks run in the order the notifications arrived, each in its own loop callback."""

    def __init__(self, dsn: str, channels: dict[str, Callable[[str], None]],
                 on_connect: Callable[[], None] | None = None, retry: float = 1.0,
                 name: str = "jobs-listener", what: str = "jobs listener",
                 logger: str = "labelhub.jobs",
                 senders: dict[str, Callable[[int, str], None]] | None = None) -> None:
        self.dsn, self.channels, self.on_connect, self.retry = dsn, channels, on_connect, retry
        self.senders = senders or {}
        self.name, self.what, self.log = name, what, logging.getLogger(logger)
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _once(self) -> None:
        conn: Any = await asyncpg.connect(self.dsn)
        closed = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: closed.set())
            for channel, callback in self.channels.items():
                await conn.add_listener(
                    channel, lambda _c, _pid, _ch, payload, cb=callback: cb(payload))
            for channel, sender_callback in self.senders.items():
                await conn.add_listener(
                    channel, lambda _c, pid, _ch, payload, cb=sender_callback: cb(pid, payload))
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
                self.log.warning("%s connection failed: %s; retrying", self.what, exc)
            await asyncio.sleep(self.retry)  # back off before reconnecting

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
