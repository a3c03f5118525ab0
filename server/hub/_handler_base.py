"""What every socket message handler shares (``server.hub.handlers.Handlers`` derives from
``HandlerBase``): the request's error, the account, privilege and image checks, the snapshot of an
image and the subscription after it, and telling the project who is on which image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from server import _label_store as label_store
from server._web import actor_for
from server.db import driver_connection
from server.hub import _context, _snapshot, leases
from server.hub.connection import Connection
from server.hub.hub import Hub
from server.models import Image, ImageLock, Project, User, utcnow
from server.permissions import ALL, Privilege, allowed
from server.protocol import ImageLabelOut, LockInfo, Snapshot, UserRef

__all__ = ["HandlerBase", "RequestError", "SnapshotFrame", "actor_for_id"]


@dataclass(frozen=True)
class SnapshotFrame:
    """A snapshot ready to send: its seq and its encoded frame."""

    seq: int
    frame: str


class RequestError(Exception):
    """A request's ``error``; ``close`` (reason, close code): then the socket is closed."""

    def __init__(self, code: str, message: str, holder: UserRef | None = None,
                 close: tuple[str, int] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.holder, self.close = code, message, holder, close


class HandlerBase:
    def __init__(self, state: State, hub: Hub) -> None:
        self.state, self.hub = state, hub
        self.settings = state.settings
        self.settings_cache = _context.SettingsCache()
        self.postgresql = state.engine.dialect.name == "postgresql"

    # --- helpers -----------------------------------------------------------------------------

    async def _require(self, session: AsyncSession, conn: Connection, needed: Privilege,
                       exists: bool | None = None) -> None:
        """Check ``needed`` in the connection's project. ``hello`` says whether the project
        exists: a missing project and one the user is not a member of get the same answer (as
        REST's 404), so the socket does not tell which project ids exist. A joined connection
        found to have lost "view" is revoked at once (the notice may still be on its way)."""
        if conn.project_id is None:
            raise RequestError("hello_first", "send hello first")
        actor = await actor_for_id(session, conn)
        if exists is False or (exists and actor.privileges is None and not actor.is_admin):
            raise RequestError("not_found", f"no project {conn.project_id}")
        conn.privileges = int(ALL) if actor.is_admin else int(actor.privileges or 0)
        if exists is None and not conn.privileges & Privilege.VIEW:
            self.hub.set_privileges(conn, None)
        if not allowed(actor, needed):
            raise RequestError("forbidden", f"this needs the '{(needed.name or '').lower()}' privilege")

    async def _image(self, session: AsyncSession, conn: Connection, image_id: int) -> Image:
        image = await session.get(Image, image_id)
        if image is None or image.project_id != conn.project_id:
            raise RequestError("not_found", f"no image {image_id} in this project")
        return image

    def _lock_info(self, token: int, expires_at: datetime | None) -> LockInfo:
        return LockInfo(token=token, expires_at=leases.iso(expires_at) or "")

    async def snapshot(self, session: AsyncSession, image: Image) -> SnapshotFrame:
        """The snapshot read statement by statement (SQLite; on PostgreSQL ``_snapshot.read_pg``
        reads the same in one)."""
        seq = (await session.execute(select(Project.seq).where(Project.id == image.project_id))).scalar_one()
        objects = await _snapshot.objects_json(session, image.id)
        labels = await label_store.read_image_labels(session, image.id)
        lock_row = await session.get(ImageLock, image.id)
        held = lock_row is not None and lock_row.holder_id is not None
        who = await leases.holder(session, lock_row.holder_id) if lock_row and held else None
        row = _snapshot.SnapshotRow(
            seq=int(seq), project_id=image.project_id, objects=objects,
            labels=[{"label": s.label, "is_default": s.is_default, "source": s.source} for s in labels],
            holder_id=who.id if who else None, holder_name=who.name if who else None,
            expires_at=lock_row.expires_at if lock_row else None)
        return self._snapshot_frame(image.id, row)

    async def subscribe_image(self, conn: Connection, image_id: int) -> SnapshotFrame:
        """Take a consistent snapshot and start delivering the image's ops after it."""
        room = self.hub.rooms.get(conn.project_id or 0)
        assert room is not None
        if self.postgresql:
            async with room.lock, driver_connection(self.state.engine) as driver:
                row = await _snapshot.read_pg(driver, image_id)
                if row is None or row.project_id != conn.project_id:
                    raise RequestError("not_found", f"no image {image_id} in this project")
                conn.subscriptions[image_id] = row.seq
            return self._snapshot_frame(image_id, row)
        # SQLite: one writer at a time, so the snapshot's reads in one transaction agree.
        async with room.lock, self.state.sessions() as session, session.begin():
            image = await self._image(session, conn, image_id)
            snap = await self.snapshot(session, image)
            conn.subscriptions[image_id] = snap.seq
        return snap

    def _snapshot_frame(self, image_id: int, row: _snapshot.SnapshotRow) -> SnapshotFrame:
        """The frame of a snapshot read either way; the lock only while it is unexpired."""
        lock = None
        if row.holder_id is not None and row.expires_at and row.expires_at > utcnow():
            lock = {"holder": {"id": row.holder_id, "name": row.holder_name or f"user {row.holder_id}"},
                    "expires_at": leases.iso(row.expires_at)}
        head = Snapshot(image=image_id, seq=row.seq, objects=[],
                        labels=[ImageLabelOut.model_validate(label) for label in row.labels],
                        lock=lock)
        return SnapshotFrame(seq=row.seq, frame=_snapshot.frame(head, row.objects))

    async def _now_viewing(self, conn: Connection, image_id: int) -> None:
        """Tell the project who is on which image (without waiting for a cursor move)."""
        if self.hub.viewing(conn, image_id):
            await self._presence(conn, image_id, None, None)

    async def _presence(self, conn: Connection, image: int, x: float | None, y: float | None) -> None:
        """Tell this process's room, and the other processes' (PostgreSQL), where ``conn`` is."""
        self.hub.broadcast_presence(conn, image, x, y)
        publish = getattr(self.state, "publish_presence", None)
        if publish is not None:
            await publish(conn, image, x, y)


async def actor_for_id(session: AsyncSession, conn: Connection) -> Any:
    user = await session.get(User, conn.user_id)
    if user is None or not user.is_active:
        raise RequestError("unauthorized", "this account is no longer active")
    assert conn.project_id is not None
    return await actor_for(session, user, conn.project_id)
