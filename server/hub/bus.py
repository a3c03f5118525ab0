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
from typing import Any

import asyncpg

from server._listen import Listener, asyncpg_dsn
from server._oplog import DOORBELL_CHANNEL
from server.revocations import CHANNEL as REVOKE_CHANNEL

log = logging.getLogger("labelhub.bus")
PRESENCE_CHANNEL = "labelhub_presence"

__all__ = ["PRESENCE_CHANNEL", "PgBus", "asyncpg_dsn"]


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
        self._publisher: Any = None
        self._publish_lock = asyncio.Lock()  # one asyncpg connection runs one query at a time
        channels: dict[str, Callable[[str], None]] = {
            DOORBELL_CHANNEL: lambda _payload: self.ring(), PRESENCE_CHANNEL: self._presence}
        if on_revoke is not None:
            channels[REVOKE_CHANNEL] = on_revoke
        # On (re)connecting: catch up on whatever rang while we were away.
        self._listener = Listener(dsn, channels, on_connect=lambda: (self.resync or self.ring)(),
                                  retry=retry, name="pg-bus", what="bus", logger=log.name)
        self.connected = self._listener.connected

    def start(self) -> None:
        self._listener.start()

    def _presence(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if isinstance(message, dict) and message.pop("from", None) != self.process_id:
            self.on_presence(message)

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
        await self._listener.stop()
        if self._publisher is not None and not self._publisher.is_closed():
            await self._publisher.close()
