"""What each client message does. One transaction per message; ack after commit.

Privileges are read from the database inside the message's transaction, so a demoted member's
next op is refused even before the ``privileges`` event reaches their other connections. The
checks and the snapshot every message shares are in ``server/hub/_handler_base.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from server import undo as undo_log
from server._edit_lease import check_lease, touch
from server.db import transaction
from server.edits import EditError, Prepared, commit_op, object_ids, parse_object_op
from server.hub import _context, _fast_op, leases
from server.hub._handler_base import HandlerBase, RequestError, SnapshotFrame, actor_for_id
from server.hub.connection import Connection
from server.hub.skip import SkipRules
from server.image_query import ImageFilter
from server.models import Image, Project, utcnow
from server.permissions import ALL, Privilege, allowed, to_names
from server.preferences import effective_settings
from server.protocol import (
    Ack,
    Cursor,
    Heartbeat,
    Hello,
    NextImage,
    Op,
    OpenImage,
    Redo,
    ReleaseImage,
    ResetEvent,
    Subscribe,
    Undo,
    Unsubscribe,
    UserRef,
    encode,
)
from server.revocations import Revocation

CURSOR_INTERVAL = 0.05  # seconds between relayed cursor positions of one connection


class Handlers(HandlerBase):
    # --- messages ----------------------------------------------------------------------------

    async def hello(self, conn: Connection, msg: Hello) -> None:
        if conn.project_id is not None:
            raise RequestError("already_joined", "hello was already sent on this connection")
        revoker = getattr(self.state, "revoker", None)
        heard = revoker.heard if revoker is not None else 0
        async with transaction(self.state.sessions) as session:
            project = await session.get(Project, msg.project)
            conn.project_id = msg.project
            try:
                await self._require(session, conn, Privilege.VIEW, exists=project is not None)
                for image_id in msg.images:
                    await self._image(session, conn, image_id)
            finally:
                conn.project_id = None
        for image_id in msg.images:
            conn.subscriptions[image_id] = msg.since or 0
        seq, reset = await self.hub.join(conn, msg.project, msg.since)
        if revoker is not None and revoker.heard != heard:
            # A revocation arrived between the check above and the join: it found no socket
            # in this project to act on, so look again now that there is one.
            revoker.schedule(Revocation(conn.user_id, msg.project, "hello"))
        conn.send(encode(Ack(id=msg.id, seq=seq, user=UserRef(id=conn.user_id, name=conn.user_name),
                             privileges=to_names(conn.privileges), present=self.hub.present(conn))))
        if reset:
            conn.send(encode(ResetEvent(seq=seq, reason="resume point is older than the kept log")))
            for image_id in list(conn.subscriptions):
                conn.send((await self.subscribe_image(conn, image_id)).frame)

    async def subscribe(self, conn: Connection, msg: Subscribe) -> None:
        async with transaction(self.state.sessions) as session:
            await self._require(session, conn, Privilege.VIEW)
        snap = await self.subscribe_image(conn, msg.image)
        conn.send(encode(Ack(id=msg.id, seq=snap.seq)))
        conn.send(snap.frame)

    async def unsubscribe(self, conn: Connection, msg: Unsubscribe) -> None:
        conn.subscriptions.pop(msg.image, None)
        conn.send(encode(Ack(id=msg.id)))

    async def open_image(self, conn: Connection, msg: OpenImage) -> None:
        async with transaction(self.state.sessions) as session:
            await self._require(session, conn, Privilege.LABEL)
            if msg.take_over:
                await self._require(session, conn, Privilege.REVIEW)
            image = await self._image(session, conn, msg.image)
            result = await leases.open_image(
                session, image, user_id=conn.user_id, connection_id=conn.id,
                ttl=self.settings.lock_ttl_seconds, take_over=msg.take_over, now=utcnow(),
                idle_limit=self.settings.idle_limit_seconds)
            assert result is not None
        conn.ever_locked |= result.granted
        if not result.granted:
            who = result.holder
            raise RequestError("locked", f"{who.name if who else 'someone'} is labeling this image",
                               UserRef(id=who.id, name=who.name) if who else None)
        snap = await self.subscribe_image(conn, msg.image)
        await self._now_viewing(conn, msg.image)
        conn.send(encode(Ack(id=msg.id, seq=snap.seq, image=msg.image,
                             lock=self._lock_info(result.token, result.expires_at))))
        conn.send(snap.frame)

    async def release_image(self, conn: Connection, msg: ReleaseImage) -> None:
        async with transaction(self.state.sessions) as session:
            await self._require(session, conn, Privilege.VIEW)
            image = await self._image(session, conn, msg.image)
            await leases.release_image(session, image, user_id=conn.user_id, connection_id=conn.id,
                                       now=utcnow(), idle_limit=self.settings.idle_limit_seconds)
        conn.send(encode(Ack(id=msg.id)))

    async def heartbeat(self, conn: Connection, msg: Heartbeat) -> None:
        if not conn.ever_locked:  # a watcher: nothing to renew, no transaction
            conn.send(encode(Ack(id=msg.id)))
            return
        async with transaction(self.state.sessions) as session:
            await leases.renew(session, user_id=conn.user_id, connection_id=conn.id, now=utcnow(),
                               ttl=self.settings.lock_ttl_seconds, active=msg.active,
                               idle_limit=self.settings.idle_limit_seconds)
        conn.send(encode(Ack(id=msg.id)))

    async def next_image(self, conn: Connection, msg: NextImage) -> None:
        try:
            flt = ImageFilter.model_validate(msg.filter) if msg.filter is not None else None
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise RequestError("invalid", f"filter.{where}: {err['msg']}") from None
        async with transaction(self.state.sessions) as session:
            await self._require(session, conn,
                                Privilege.REVIEW if msg.queue == "review" else Privilege.LABEL)
            assert conn.project_id is not None
            prefs = await effective_settings(session, conn.project_id, conn.user_id)
            now = utcnow()
            if msg.after is not None and msg.release:
                current = await session.get(Image, msg.after)
                if current is not None and current.project_id == conn.project_id:
                    await leases.release_image(session, current, user_id=conn.user_id,
                                               connection_id=conn.id, now=now,
                                               idle_limit=self.settings.idle_limit_seconds)
            chosen = await leases.next_image(
                session, project_id=conn.project_id, user_id=conn.user_id, connection_id=conn.id,
                after=msg.after, direction=msg.direction, images=msg.images, flt=flt,
                rules=SkipRules(prefs.skip_other_users_images, prefs.skip_images_being_labeled),
                ttl=self.settings.lock_ttl_seconds, now=now,
                idle_limit=self.settings.idle_limit_seconds, queue=msg.queue, own=msg.own)
        if chosen is None:
            conn.send(encode(Ack(id=msg.id, image=None)))
            return
        image, result = chosen
        snap = await self.subscribe_image(conn, image.id)
        await self._now_viewing(conn, image.id)
        holder = UserRef(id=result.holder.id, name=result.holder.name) if result.holder else None
        conn.ever_locked |= result.granted
        lock = self._lock_info(result.token, result.expires_at) if result.granted else None
        conn.send(encode(Ack(id=msg.id, image=image.id, seq=snap.seq, lock=lock, holder=holder)))
        conn.send(snap.frame)

    async def _edit_context(self, session: AsyncSession, conn: Connection, image_id: int,
                            client_op_id: str | None) -> _context.OpContext:
        """Account, privilege, settings, image and duplicate check for an edit: one statement."""
        if conn.project_id is None:
            raise RequestError("hello_first", "send hello first")
        ctx = await _context.load(session, user_id=conn.user_id, project_id=conn.project_id,
                                  image_id=image_id, client_op_id=client_op_id,
                                  cache=self.settings_cache)
        return self._check_context(conn, ctx, image_id)

    def _check_context(self, conn: Connection, ctx: _context.OpContext | None,
                       image_id: int) -> _context.OpContext:
        if ctx is None or not ctx.active:
            raise RequestError("unauthorized", "this account is no longer active")
        conn.privileges = int(ALL) if ctx.actor.is_admin else int(ctx.actor.privileges or 0)
        if not conn.privileges & Privilege.VIEW:  # removed, and the news is not here yet
            self.hub.set_privileges(conn, None)
        if not allowed(ctx.actor, Privilege.LABEL):
            raise RequestError("forbidden", "this needs the 'label' privilege")
        if ctx.image is None:
            raise RequestError("not_found", f"no image {image_id} in this project")
        return ctx

    async def _begin_op(self, session: AsyncSession, conn: Connection,
                        msg: Op) -> tuple[_context.OpContext, Prepared | None]:
        """The edit's context and, on PostgreSQL for an object op, its seq and objects (one
        round trip: ``server.hub._context.begin_op``)."""
        try:
            parsed = parse_object_op(msg.op) if self.postgresql else None
        except EditError:
            parsed = None  # reported by commit_op, after the privilege and lease checks
        if parsed is None:
            return await self._edit_context(session, conn, msg.image, msg.client_op_id), None
        if conn.project_id is None:
            raise RequestError("hello_first", "send hello first")
        begun = await _context.begin_op(
            session, user_id=conn.user_id, project_id=conn.project_id, image_id=msg.image,
            client_op_id=msg.client_op_id, object_ids=object_ids(parsed), cache=self.settings_cache)
        ctx = self._check_context(conn, begun.context if begun else None, msg.image)
        assert begun is not None
        prepared = Prepared(begun.seq, parsed, begun.objects) if begun.seq is not None else None
        return ctx, prepared

    async def op(self, conn: Connection, msg: Op) -> None:
        conn.own_ops.append(msg.client_op_id)  # before commit, so the tail never echoes it
        if self.postgresql and not conn.needs_verify() and await _fast_op.run(
                conn, msg, engine=self.state.engine, cache=self.settings_cache,
                idle_limit=self.settings.idle_limit_seconds, check_context=self._check_context):
            return
        conn.held = None  # what this path writes is not kept (the next fast op reads afresh)
        async with transaction(self.state.sessions) as session:
            ctx, prepared = await self._begin_op(session, conn, msg)
            if ctx.duplicate_seq is not None:
                # A resend of an op that already landed gets its original ack, lock or not.
                conn.send(encode(Ack(id=msg.id, seq=ctx.duplicate_seq, duplicate=True)))
                return
            assert ctx.image is not None and conn.project_id is not None
            now = utcnow()
            span = check_lease(ctx.lease, conn.user_id, msg.token, now)
            done = await commit_op(session, project_id=conn.project_id, image=ctx.image,
                                   user_id=conn.user_id, op_data=msg.op, settings=ctx.settings,
                                   client_op_id=msg.client_op_id, prepared=prepared)
            await touch(session, span, now, self.settings.idle_limit_seconds)
            await self._verify(session, conn)
        conn.send(encode(Ack(id=msg.id, seq=done.seq)))

    async def _verify(self, session: AsyncSession, conn: Connection) -> None:
        """Last step of an edit's transaction: refuse (roll back) if a revocation heard while
        it ran took the right to make it (``Revoker.verify``)."""
        revoker = getattr(self.state, "revoker", None)
        if revoker is not None and conn.needs_verify():
            refused = await revoker.verify(session, conn, int(Privilege.LABEL))
            if refused is not None:
                raise RequestError(refused.code, refused.message, close=refused.close)

    async def undo_redo(self, conn: Connection, msg: Undo | Redo) -> None:
        which = msg.type
        client_op_id = f"{which}:{uuid.uuid4().hex}"
        conn.own_ops.append(client_op_id)
        conn.held = None
        async with transaction(self.state.sessions) as session:
            ctx = await self._edit_context(session, conn, msg.image, None)
            assert ctx.image is not None and conn.project_id is not None
            now = utcnow()
            span = check_lease(ctx.lease, conn.user_id, msg.token, now)
            row = await undo_log.target(session, image_id=ctx.image.id, user_id=conn.user_id,
                                        depth=ctx.settings.undo_history_length, which=which)
            if row is None:
                raise RequestError(f"nothing_to_{which}", f"there is nothing to {which}")
            op_data: Any = row.inverse if which == "undo" else row.op
            op_data = undo_log.follow_renames(
                op_data, await undo_log.renames_after(session, conn.project_id, row.seq))
            done = await commit_op(session, project_id=conn.project_id, image=ctx.image,
                                   user_id=conn.user_id, op_data=op_data, settings=ctx.settings,
                                   client_op_id=client_op_id, origin=which, reverts_seq=row.seq)
            await touch(session, span, now, self.settings.idle_limit_seconds)
            await self._verify(session, conn)
        conn.send(encode(Ack(id=msg.id, seq=done.seq, op=done.op)))

    async def cursor(self, conn: Connection, msg: Cursor, now: float) -> None:
        if not conn.privileges & Privilege.VIEW:  # revoked: no cursor shown (no database read)
            raise RequestError("forbidden", "this needs the 'view' privilege")
        if msg.image not in conn.subscriptions:
            raise RequestError("not_subscribed", f"subscribe to image {msg.image} first")
        conn.send(encode(Ack(id=msg.id)))
        if now - conn.last_cursor < CURSOR_INTERVAL:
            return  # throttled: presence is best effort
        conn.last_cursor = now
        self.hub.viewing(conn, msg.image)
        await self._presence(conn, msg.image, msg.x, msg.y)


__all__ = ["EditError", "Handlers", "RequestError", "SnapshotFrame", "actor_for_id"]
