"""How a process hears that the op log grew, and how presence crosses processes.

Own commits: ``server._oplog`` calls back after each commit (both databases). Other processes'
commits (PostgreSQL): every op append runs ``pg_notify('labelhub_ops', '')`` inside its
transaction — a payload-free doorbell — and a dedicated asyncpg connection LISTENs for it.
Notifications sent while the listener is reconnecting are lost, so a reconnect wakes every room,
and the rooms also poll on a timer.

Revocations (``server.revocations``) ring ``labelhub_revoke`` with a small JSON payload, sent
when the revoking transaction commits; a reconnect re-checks every socket instead.

Presence (cursors, who is where) is not durable: it travels as a small NOTIFY payload on
``labelhub_presence``, tagged with the sending process so it does not hear itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import asyncpg

from server._oplog import DOORBELL_CHANNEL
from server.revocations import CHANNEL as REVOKE_CHANNEL

log = logging.getLogger("labelhub.bus")
PRESENCE_CHANNEL = "labelhub_presence"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PgBus:
    """LISTENs for the doorbell and presence; publishes presence."""

    def __init__(self, dsn: str, ring: Callable[[], None],
                 on_presence: Callable[[dict[str, Any]], None], retry: float = 1.0,
                 resync: Callable[[], None] | None = None,
                 on_revoke: Callable[[str], None] | None = None) -> None:
        self.dsn, self.ring, self.on_presence, self.retry = dsn, ring, on_presence, retry
        self.resync = resync  # on (re)connecting, instead of a ring: rings may have been missed
        self.on_revoke = on_revoke  # a revocation's payload (server.revocations.parse reads it)
        self.process_id = uuid.uuid4().hex[:12]
        self._task: asyncio.Task[None] | None = None
        self._publisher: Any = None
        self._publish_lock = asyncio.Lock()  # one asyncpg connection runs one query at a time
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-bus")

    def _presence(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if isinstance(message, dict) and message.pop("from", None) != self.process_id:
            self.on_presence(message)

    async def _listen_once(self) -> None:
        conn: Any = await asyncpg.connect(self.dsn)
        closed = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: closed.set())
            await conn.add_listener(DOORBELL_CHANNEL, lambda *_args: self.ring())
            await conn.add_listener(PRESENCE_CHANNEL, self._presence)
            if self.on_revoke is not None:
                revoke = self.on_revoke
                await conn.add_listener(REVOKE_CHANNEL, lambda *args: revoke(args[3]))
            self.connected.set()
            (self.resync or self.ring)()  # catch up on whatever rang while we were away
            await closed.wait()
        finally:
            self.connected.clear()
            if not conn.is_closed():
                with suppress(Exception):
                    await conn.close()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("bus connection failed: %s; retrying", exc)
            await asyncio.sleep(self.retry)  # back off before reconnecting

    async def publish_presence(self, message: dict[str, Any]) -> None:
        payload = json.dumps({**message, "from": self.process_id})
        if len(payload) > 7000:  # NOTIFY payloads must stay under 8000 bytes
            return
        async with self._publish_lock:
            try:
                if self._publisher is None or self._publisher.is_closed():
                    self._publisher = await asyncpg.connect(self.dsn)
                await self._publisher.execute("SELECT pg_notify($1, $2)", PRESENCE_CHANNEL, payload)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("presence publish failed: %s", exc)
                self._publisher = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._publisher is not None and not self._publisher.is_closed():
            await self._publisher.close()
