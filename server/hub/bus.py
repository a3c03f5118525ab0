"""How a process hears that the op log grew, and how presence crosses processes.

Own commits: ``server._oplog`` calls back after each commit (both databases). Other processes'
commits (PostgreSQL): every op append runs ``pg_notify('labelhub_ops', '')`` inside its
transaction — a payload-free doorbell — and a dedicated asyncpg connection LISTENs for it.
An edit's commit also sends its row on ``labelhub_op_rows`` when it fits (server/hub/_op_rows.py):
both come from one backend, the doorbell first. A doorbell whose row follows it is settled by
the row (the hub fans it out without reading the log); one left alone once the notifications
that came with it are handled rings the hub, which reads the log. Notifications sent while the
listener is reconnecting are lost, so a reconnect wakes every room, and the rooms also poll on
a timer.

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
from server._oplog import DOORBELL_CHANNEL, LoggedOp
from server.hub._op_rows import PROCESS_TAG, ROW_CHANNEL, parse_row
from server.revocations import CHANNEL as REVOKE_CHANNEL

log = logging.getLogger("labelhub.bus")
PRESENCE_CHANNEL = "labelhub_presence"

__all__ = ["PRESENCE_CHANNEL", "PgBus", "RowCallback", "asyncpg_dsn"]


#: ``on_row(project_id, row, own)``: a committed row heard with its doorbell; ``own`` when this
#: process committed it (``server.hub._op_rows.PROCESS_TAG``).
RowCallback = Callable[[int, LoggedOp, bool], None]


class PgBus:
    """LISTENs for the doorbell, committed rows and presence; publishes presence."""

    def __init__(self, dsn: str, ring: Callable[[], None],
                 on_presence: Callable[[dict[str, Any]], None], retry: float = 1.0,
                 resync: Callable[[], None] | None = None,
                 on_revoke: Callable[[str], None] | None = None,
                 on_row: RowCallback | None = None, tag: str = PROCESS_TAG) -> None:
        self.dsn, self.ring, self.on_presence, self.retry = dsn, ring, on_presence, retry
        self.resync = resync  # on (re)connecting, instead of a ring: rings may have been missed
        self.on_revoke = on_revoke  # a revocation's payload (server.revocations.parse reads it)
        self.on_row, self.tag = on_row, tag
        self.process_id = uuid.uuid4().hex[:12]
        self._publisher: Any = None
        self._publish_lock = asyncio.Lock()  # one asyncpg connection runs one query at a time
        # Doorbells heard per sending backend and not yet settled by their row.
        self._unpaired: dict[int, int] = {}
        self._settle_due = False
        channels: dict[str, Callable[[str], None]] = {PRESENCE_CHANNEL: self._presence}
        if on_revoke is not None:
            channels[REVOKE_CHANNEL] = on_revoke
        senders: dict[str, Callable[[int, str], None]] = {DOORBELL_CHANNEL: self._doorbell}
        if on_row is not None:
            senders[ROW_CHANNEL] = self._row
        self._listener = Listener(dsn, channels, on_connect=self._connected, retry=retry,
                                  name="pg-bus", what="bus", logger=log.name, senders=senders)
        self.connected = self._listener.connected

    def start(self) -> None:
        self._listener.start()

    def _connected(self) -> None:
        # On (re)connecting: catch up on whatever rang while we were away.
        self._unpaired.clear()
        (self.resync or self.ring)()

    def _doorbell(self, pid: int, _payload: str) -> None:
        if self.on_row is None:
            self.ring()
            return
        # The row, if any, arrived with it and its callback is queued behind this one: settle
        # the count once the loop has run those (the callback after next).
        self._unpaired[pid] = self._unpaired.get(pid, 0) + 1
        if not self._settle_due:
            self._settle_due = True
            asyncio.get_running_loop().call_soon(self._settle)

    def _row(self, pid: int, payload: str) -> None:
        heard = parse_row(payload)
        if heard is None or self.on_row is None:
            return  # its doorbell stands: the log is read
        left = self._unpaired.get(pid, 0)
        if left > 1:
            self._unpaired[pid] = left - 1
        elif left:
            del self._unpaired[pid]
        self.on_row(heard.project_id, heard.entry, heard.tag == self.tag)

    def _settle(self) -> None:
        """Ring the hub once per doorbell no row settled (a bulk append, a lock change, a row
        too long for a payload)."""
        self._settle_due = False
        rings = sum(self._unpaired.values())
        self._unpaired.clear()
        for _ in range(rings):
            self.ring()

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
