"""A project's room on one process, the event frame of a committed op-log row, and who in the
room gets it.

Pure bookkeeping around ``server.hub.hub.Hub``: no database. A row's frame is encoded once and
framed once for all its receivers (``send_to``); ``receivers`` runs for every watcher of every
op, so it reads the row's fields once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from server._oplog import LoggedOp
from server.hub.connection import Connection, wire_frame
from server.models import OpLogEntry
from server.permissions import Privilege
from server.protocol import LockEvent, OpEvent, UserRef, encode

__all__ = ["PROJECT_WIDE", "VIEW", "Room", "audience", "lock_event", "op_event", "receivers",
           "row_event", "send_to"]

# Workflow states go to every watcher: dashboards and the supervisor view count them live.
PROJECT_WIDE = frozenset({"rename_label", "delete_label", "members", "state"})
VIEW = int(Privilege.VIEW)


@dataclass(eq=False)
class Room:
    project_id: int
    seq: int
    connections: set[Connection] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    progress_due: float = 0.0
    progress_task: asyncio.Task[None] | None = None
    progress_stale: bool = False  # a commit came after the running progress query began
    joining: int = 0  # joins in flight: the tail must not retire a room one is about to enter
    # Connections that are on an image (opened it or pointed at it): the ones presence is about.
    viewers: dict[Connection, int] = field(default_factory=dict)
    # Rows that came ahead of their predecessor, by seq, and the timer after which the tail
    # reads the log instead of waiting longer (``Hub._deliver``).
    early: dict[int, LoggedOp] = field(default_factory=dict)
    gap_timer: asyncio.TimerHandle | None = None

    def take(self, rows: Iterable[LoggedOp]) -> list[LoggedOp]:
        """The rows to fan out now, in seq order, each advancing ``seq``: those next in line,
        then the held ones they make next. A row ahead of a missing one is held in ``early``;
        one the room has passed (read from the log already) is dropped."""
        ready: list[LoggedOp] = []
        for row in rows:
            if row.seq == self.seq + 1:
                self.seq = row.seq
                ready.append(row)
            elif row.seq > self.seq:
                self.early[row.seq] = row
        while (held := self.early.pop(self.seq + 1, None)) is not None:
            self.seq = held.seq
            ready.append(held)
        if self.early and min(self.early) <= self.seq:
            self.early = {seq: row for seq, row in self.early.items() if seq > self.seq}
        return ready


def op_event(row: Any) -> str:
    return encode(OpEvent(seq=row.seq, image=row.image_id, user=row.user_id, op=row.op,
                          client_op_id=row.client_op_id, origin=row.origin))


def lock_event(row: Any) -> str:
    op = row.op
    who = op.get("holder")
    return encode(LockEvent(seq=row.seq, image=row.image_id, state=op["state"],
                            holder=UserRef(**who) if who else None, expires_at=op.get("expires_at"),
                            image_state=op.get("image_state")))


def row_event(row: Any) -> str:
    """The event frame of one op-log row: a ``lock`` event or an ``op`` event."""
    return lock_event(row) if row.kind == "lock" else op_event(row)


def receivers(connections: Iterable[Connection], row: OpLogEntry | LoggedOp, *,
              replay: bool) -> list[Connection]:
    """Who gets ``row``: everyone for lock and project-wide rows; for an image's op, those
    subscribed to the image since before it, except the sender's own connection (it has
    its ack), unless replaying. One pass with the row's fields read once: it runs for every
    watcher of every op."""
    # A connection that lost "view" gets nothing, whether or not it is closed yet: its cached
    # privileges say so, and a revoked one has no subscriptions left (Connection.revoke), so
    # an image's op costs no extra test per receiver.
    if row.kind == "lock" or row.kind in PROJECT_WIDE or row.image_id is None:
        return [conn for conn in connections if conn.privileges & VIEW]
    image, seq, user, client_op_id = row.image_id, row.seq, row.user_id, row.client_op_id
    mine = not replay and client_op_id is not None
    return [conn for conn in connections
            if (since := conn.subscriptions.get(image)) is not None and seq > since
            and not (mine and conn.user_id == user and client_op_id in conn.own_ops)]


def audience(room: Room) -> list[Connection]:
    """The room's connections that may see the project (for presence and progress)."""
    return [c for c in room.connections if c.privileges & VIEW]


def send_to(connections: Iterable[Connection], frame: str, skip: Connection | None = None) -> None:
    wire = wire_frame(frame)  # framed once for every receiver
    for other in list(connections):
        if other is not skip:
            other.send(frame, wire)
