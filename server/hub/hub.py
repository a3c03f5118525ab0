"""The hub: per-project rooms that tail the op log and fan committed events out to connections.

Nothing that matters lives only here: ops and leases are in the database, and each process's
rooms read the log by seq. A room wakes when its own process commits (an in-process callback)
or another process does (the bus doorbell), and on a slow poll as a safety net. Committed rows
need no read when they come with the commit: this process's own, and another process's edits
that the bus hears with their row (``heard_row``), each in seq order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server._oplog import LoggedOp
from server.db import run
from server.hub import _rooms
from server.hub._rooms import PROJECT_WIDE, VIEW, Room, lock_event, op_event, row_event
from server.hub.connection import Connection
from server.models import Membership, OpLogEntry, Project
from server.permissions import ALL, to_names
from server.protocol import (
    CLOSE_FORBIDDEN,
    PresenceEvent,
    Present,
    PrivilegesEvent,
    ProgressEvent,
    UserRef,
    encode,
)
from server.stats import progress

# Room, PROJECT_WIDE and the event frames live in _rooms; importable from here as before.
__all__ = ["NOT_A_MEMBER", "PROGRESS_INTERVAL", "PROJECT_WIDE", "TAIL_BATCH", "Hub", "Room",
           "lock_event", "op_event", "row_event"]

log = logging.getLogger("labelhub.hub")
TAIL_BATCH = 500
PROGRESS_INTERVAL = 1.0  # seconds between progress events of one project
CLOSE_WAIT = 5.0  # seconds close() lets a room's read under way finish before cancelling it
GAP_GRACE, EARLY_LIMIT = 0.02, 1024  # how long and how many rows wait for a missing seq
#: Why a socket whose membership went away is closed (with 4403).
NOT_A_MEMBER = "you are no longer a member of this project"
_HEAD = select(Project.seq).where(Project.id == bindparam("project_id"))


class Hub:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], poll_interval: float = 1.0) -> None:
        self.sessions = sessions
        self.rooms: dict[int, Room] = {}
        self.poll_interval = poll_interval
        self.gap_grace = GAP_GRACE
        self._closing = False
        self._closed = asyncio.Event()  # wakes the waits of the rooms' tasks at close()
        # Doorbells this process rang itself and has not heard back yet (PostgreSQL rings every
        # commit's doorbell to every listener, the committer's own included).
        self.own_rings = 0
        self.counts_own_rings = False
        # Every open socket of this process by user, joined or not: revocations find them here.
        self.sockets: dict[int, set[Connection]] = {}

    def attach(self, conn: Connection) -> None:
        self.sockets.setdefault(conn.user_id, set()).add(conn)

    def detach(self, conn: Connection) -> None:
        mine = self.sockets.get(conn.user_id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self.sockets[conn.user_id]

    # --- rooms and membership ----------------------------------------------------------------

    async def join(self, conn: Connection, project_id: int, since: int | None) -> tuple[int, bool]:
        """Add a connection to its project's room and replay what it missed.

        Returns ``(current seq, reset)``; ``reset`` when ``since`` is older than the log keeps.
        """
        room = await self._room(project_id)
        room.joining += 1
        try:
            await self._advance(room)  # catch up first, so the ack's seq is the project's head
            async with room.lock:
                reset = False
                if since is not None and since < room.seq:
                    reset = not await self._replay(conn, room, since)
                conn.project_id = project_id
                room.connections.add(conn)
                return room.seq, reset
        finally:
            room.joining -= 1

    def present(self, conn: Connection) -> list[Present]:
        """Who else is on an image of ``conn``'s project on this process, one entry per user."""
        room = self.rooms.get(conn.project_id or 0)
        seen: dict[int, Present] = {}
        for other, image in list(room.viewers.items()) if room else ():
            if other.user_id != conn.user_id and other.user_id not in seen:
                seen[other.user_id] = Present(user=UserRef(id=other.user_id, name=other.user_name),
                                              image=image)
        return sorted(seen.values(), key=lambda p: p.user.id)

    def viewing(self, conn: Connection, image: int) -> bool:
        """``conn`` is on ``image`` now; True when that is news (tell the project)."""
        room = self.rooms.get(conn.project_id or 0)
        if room is None or room.viewers.get(conn) == image:
            return False
        room.viewers[conn] = image
        return True

    def leave(self, conn: Connection) -> bool:
        """Take ``conn`` out of its room; True when it was on an image (others were told)."""
        if conn.project_id is None:
            return False
        room = self.rooms.get(conn.project_id)
        if room is None:
            return False
        room.connections.discard(conn)
        if room.viewers.pop(conn, None) is None:
            # Joining and leaving without ever opening an image tells nobody: a room of N
            # dashboards would otherwise cost N^2 presence frames as they come and go.
            return False
        self.broadcast_presence(conn, None, None, None, online=False)
        return True

    async def _room(self, project_id: int) -> Room:
        room = self.rooms.get(project_id)
        if room is None:
            async with self.sessions() as session:
                seq = (await session.execute(
                    select(Project.seq).where(Project.id == project_id))).scalar_one()
            room = self.rooms.get(project_id)
            if room is None:
                room = self.rooms[project_id] = Room(project_id, int(seq))
                room.task = asyncio.create_task(self._tail(room), name=f"tail-{project_id}")
        return room

    async def _replay(self, conn: Connection, room: Room, since: int) -> bool:
        """Send ``conn`` the events after ``since`` up to the room's position; False if pruned."""
        async with self.sessions() as session:
            oldest = (await session.execute(select(func.min(OpLogEntry.seq)).where(
                OpLogEntry.project_id == room.project_id))).scalar_one_or_none()
            if oldest is not None and oldest > since + 1:
                return False
            stmt = (select(OpLogEntry).where(OpLogEntry.project_id == room.project_id,
                                             OpLogEntry.seq > since, OpLogEntry.seq <= room.seq)
                    .order_by(OpLogEntry.seq))
            for row in (await session.execute(stmt)).scalars():
                frame = self._frame_for(conn, row, replay=True)
                if frame is not None:
                    conn.send(frame)
        return True

    # --- the tail ----------------------------------------------------------------------------

    def committed(self, project_id: int, last_seq: int, entries: list[LoggedOp] | None) -> None:
        """A commit in this process appended ops (called synchronously after the commit).

        Deliver the rows this process already holds without reading them back, right after the
        committing task sends its ack; a row ahead of a missing seq waits for it (``_mind_gap``).
        """
        if self.counts_own_rings:
            self.own_rings += 1
        if project_id not in self.rooms:
            return
        if entries is None:
            self.poke(project_id)
            return
        asyncio.get_running_loop().call_soon(self._deliver, project_id, entries)

    def _deliver(self, project_id: int, entries: list[LoggedOp]) -> None:
        room = self.rooms.get(project_id)
        if room is None:
            return
        if room.lock.locked() or any(e.kind == "members" for e in entries):
            room.wake.set()  # a snapshot or catch-up is in flight: let the tail read
            return
        for entry in room.take(entries):
            self._fan_out(room, entry)
        self._mind_gap(room)
        self._schedule_progress(room)

    def _mind_gap(self, room: Room) -> None:
        """Rows held behind a missing seq wait ``gap_grace`` for it, then the tail reads the log.
        Two commits of a project here can finish out of order (two connections), a row heard
        from another process can trail our next: the missing row is usually a loop iteration
        away, while reading the log for it (20-30 ms with a 100 MP mask edit among the rows,
        measured) held back every edit behind it."""
        if not room.early:
            if room.gap_timer is not None:
                room.gap_timer.cancel()
                room.gap_timer = None
        elif len(room.early) > EARLY_LIMIT:
            room.early.clear()
            room.wake.set()
        elif room.gap_timer is None:
            room.gap_timer = asyncio.get_running_loop().call_later(
                self.gap_grace, self._gap_expired, room)

    @staticmethod
    def _gap_expired(room: Room) -> None:
        room.gap_timer = None
        if room.early:  # still missing: the tail reads it, and the rows held, from the log
            room.wake.set()

    def heard_row(self, project_id: int, entry: LoggedOp, own: bool) -> None:
        """A committed row heard on the bus with its doorbell (server/hub/_op_rows.py). Another
        process's row is delivered like an own commit's, in seq order (one ahead of a missing seq
        waits for it; a catch-up in flight wakes the tail instead); an own row was delivered at
        its commit and only settles the doorbell ``committed`` counted for it (which may come
        after the row: the count may dip below zero meanwhile)."""
        if own:
            if self.counts_own_rings:
                self.own_rings -= 1
            return
        room = self.rooms.get(project_id)
        if room is not None and entry.seq > room.seq:  # not read from the log already
            self._deliver(project_id, [entry])

    def doorbell(self) -> None:
        """Some process committed ops. Our own commits were delivered already: skip as many
        rings as we caused (if one from elsewhere is skipped instead, ours still arrives later
        and wakes the tails then; the poll covers the rest)."""
        if self.own_rings > 0:
            self.own_rings -= 1
            return
        self.poke(None)

    def resync_rings(self) -> None:
        """The listener (re)connected: rings sent meanwhile are lost; read everything."""
        self.own_rings = 0
        self.poke(None)

    def poke(self, project_id: int | None = None) -> None:
        """Wake one room (a local commit) or all (a doorbell from another process)."""
        rooms = self.rooms.values() if project_id is None else filter(None, [self.rooms.get(project_id)])
        for room in rooms:
            room.wake.set()

    async def _tail(self, room: Room) -> None:
        while not self._closing:
            with suppress(TimeoutError):
                await asyncio.wait_for(room.wake.wait(), timeout=self.poll_interval)
            if self._closing:
                return
            room.wake.clear()
            try:
                await self._advance(room)
            except Exception:  # keep tailing; the next wake or poll retries
                log.exception("tail of project %s failed", room.project_id)
            if not room.connections and not room.joining and not room.wake.is_set():
                # Nobody watches: stop tailing; the next join starts again from the database.
                self.rooms.pop(room.project_id, None)
                return

    async def _advance(self, room: Room) -> None:
        while True:
            async with self.sessions() as session:
                # Most wakes find nothing new (the doorbell rings for this process's own commits
                # too): a primary-key read of the head is cheaper than the log query.
                head = (await run(session, _HEAD, {"project_id": room.project_id})).scalar()
                if head is None or head <= room.seq:
                    return
                rows = (await session.execute(
                    select(OpLogEntry).where(OpLogEntry.project_id == room.project_id,
                                             OpLogEntry.seq > room.seq)
                    .order_by(OpLogEntry.seq).limit(TAIL_BATCH))).scalars().all()
            if not rows:
                return
            async with room.lock:
                for row in rows:
                    if row.seq <= room.seq:
                        continue  # another catch-up already delivered it
                    if row.seq != room.seq + 1:
                        # A gap means a transaction holding that seq has not committed yet;
                        # seq is gap-free once it does, so wait for it rather than skip.
                        return
                    room.seq = row.seq
                    await self._dispatch(room, row)
                for held in room.take(()):  # what the read passed is dropped; the rest, next
                    self._fan_out(room, held)
                self._mind_gap(room)
            self._schedule_progress(room)
            if len(rows) < TAIL_BATCH:
                return

    async def _dispatch(self, room: Room, row: OpLogEntry) -> None:
        if row.kind == "members":
            await self._refresh_privileges(room, int(row.op.get("user_id", 0)))
        self._fan_out(room, row)

    def _fan_out(self, room: Room, row: OpLogEntry | LoggedOp) -> None:
        """Send one committed row to every connection of the room that should see it."""
        receivers = self._receivers(room.connections, row, replay=False)
        if receivers:
            self.send_to(receivers, row_event(row))  # encoded and framed once

    def _frame_for(self, conn: Connection, row: OpLogEntry, *, replay: bool) -> str | None:
        return row_event(row) if self._receivers((conn,), row, replay=replay) else None

    _receivers = staticmethod(_rooms.receivers)  # who gets a row (server/hub/_rooms.py)

    # --- privileges, presence, progress ------------------------------------------------------

    async def _refresh_privileges(self, room: Room, user_id: int) -> None:
        targets = [c for c in room.connections if c.user_id == user_id]
        if not targets:
            return
        async with self.sessions() as session:
            privileges = (await session.execute(select(Membership.privileges).where(
                Membership.project_id == room.project_id, Membership.user_id == user_id))
            ).scalar_one_or_none()
        for conn in targets:
            self.set_privileges(conn, int(ALL) if conn.is_admin else privileges)

    def set_privileges(self, conn: Connection, privileges: int | None, *,
                       always: bool = True) -> None:
        """Apply a member's new privileges to one of their sockets: without "view" (removed
        from the project) it is closed with 4403; otherwise it is told its new privileges
        (when ``always`` or when they changed)."""
        new = int(privileges or 0)
        if not new & VIEW:
            conn.revoke(NOT_A_MEMBER, CLOSE_FORBIDDEN)
            return
        changed, conn.privileges = new != conn.privileges, new
        if changed or always:
            conn.send(encode(PrivilegesEvent(privileges=to_names(new))))

    def broadcast_presence(self, conn: Connection, image: int | None, x: float | None,
                           y: float | None, *, online: bool = True) -> None:
        if conn.project_id is None:
            return
        room = self.rooms.get(conn.project_id)
        if room is None:
            return
        frame = encode(PresenceEvent(user=UserRef(id=conn.user_id, name=conn.user_name),
                                     image=image, x=x, y=y, online=online))
        self.send_to(self.audience(room), frame, skip=conn)

    # Module functions (server/hub/_rooms.py), also reached through the hub by its callers.
    audience = staticmethod(_rooms.audience)
    send_to = staticmethod(_rooms.send_to)

    def _schedule_progress(self, room: Room) -> None:
        room.progress_stale = True
        if room.progress_task is not None and not room.progress_task.done():
            return  # the running task sees the flag and counts again once it is done
        room.progress_task = asyncio.create_task(self._progress(room))

    async def _progress(self, room: Room) -> None:
        # A commit that lands while a count runs may or may not be in it: the flag makes the
        # task count again after it, so the last event always reflects the last commit.
        while room.progress_stale and not self._closing:
            delay = room.progress_due - time.monotonic()
            if delay > 0:  # throttle: one progress event per interval
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), timeout=delay)
                if self._closing:
                    return
            room.progress_stale = False
            room.progress_due = time.monotonic() + PROGRESS_INTERVAL
            try:
                event = await self.progress(room.project_id, room.seq)
            except Exception:
                log.exception("progress of project %s failed", room.project_id)
                return
            # Sent after every change, counts moved or not: the supervisor view takes it as its
            # cue to reload per-user statistics (objects created and edited), which every edit
            # moves.
            self.send_to(self.audience(room), encode(event))

    async def progress(self, project_id: int, seq: int) -> ProgressEvent:
        async with self.sessions() as session:
            return await progress(session, project_id, seq)

    async def close(self) -> None:
        """Stop the rooms' tasks. Each is woken and ends after the read it may be in: a read
        cancelled half-way would leave its database connection to the garbage collector, open
        past the engine's disposal. One stuck longer than ``CLOSE_WAIT`` is cancelled."""
        self._closing = True
        self._closed.set()
        self.poke(None)
        for room in self.rooms.values():
            if room.gap_timer is not None:
                room.gap_timer.cancel()
        tasks = [t for r in self.rooms.values() for t in (r.task, r.progress_task) if t]
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=CLOSE_WAIT)
            for task in stuck:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task
        self.rooms.clear()

