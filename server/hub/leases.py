"""Image leases, labeling sessions and next-image choice, applied to the database.

The rules live in ``locks``, ``timing`` and ``skip``; this module loads rows, asks the rules and
writes the outcome in the caller's transaction. Every grant, release, expiry and take-over is
also an op-log row (kind ``lock``), so every process and every resuming client hears of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server import image_states
from server._oplog import reserve_seqs
from server.edits import append
from server.hub import locks, skip, timing
from server.image_query import ImageFilter, apply_filter
from server.models import (
    Image,
    ImageAssignment,
    ImageLabel,
    ImageLock,
    LabelingSession,
    LabelObjectRow,
    User,
)
from server.workflow import FINISHED, State


@dataclass(frozen=True)
class Holder:
    id: int
    name: str


async def holder(session: AsyncSession, user_id: int | None) -> Holder | None:
    if user_id is None:
        return None
    user = await session.get(User, user_id)
    return Holder(user_id, user.name if user else f"user {user_id}")


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


async def _log_lock(session: AsyncSession, project_id: int, image_id: int, state: str,
                    who: Holder | None, expires_at: datetime | None, user_id: int | None,
                    seq: int | None = None, image_state: str | None = None) -> int:
    op: dict[str, Any] = {"kind": "lock", "state": state,
                          "holder": {"id": who.id, "name": who.name} if who else None,
                          "expires_at": iso(expires_at)}
    if image_state is not None:  # the grant started the image (server.workflow)
        op["image_state"] = image_state
    return await append(session, project_id=project_id, image_id=image_id, user_id=user_id,
                        kind="lock", op=op, inverse=None, client_op_id=None, origin="lock",
                        seq=seq)


async def _locked_row(session: AsyncSession, image: Image, *, skip_locked: bool = False) -> ImageLock | None:
    """The image's lease row, created when missing, locked for this transaction."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ins: Any = postgresql.insert(ImageLock) if dialect == "postgresql" else sqlite.insert(ImageLock)
    await session.execute(ins.values(image_id=image.id, project_id=image.project_id, token=0)
                          .on_conflict_do_nothing(index_elements=["image_id"]))
    stmt = select(ImageLock).where(ImageLock.image_id == image.id)
    stmt = stmt.with_for_update(skip_locked=True) if skip_locked else stmt.with_for_update()
    row = (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    return row


def _write(row: ImageLock, lease: locks.Lease, now: datetime) -> None:
    row.holder_id, row.connection_id, row.token, row.expires_at = (
        lease.holder_id, lease.connection_id, lease.token, lease.expires_at)
    if lease.holder_id is not None:
        row.acquired_at = now


async def _end_session(session: AsyncSession, image_id: int, token: int, now: datetime,
                       idle_limit: float) -> None:
    rows = (await session.execute(select(LabelingSession).where(
        LabelingSession.image_id == image_id, LabelingSession.lock_token == token,
        LabelingSession.ended_at.is_(None)))).scalars()
    for row in rows:
        # A lapsed lease ends at its last sign of life, not when somebody noticed.
        end = min(now, max(row.last_activity_at, row.started_at))
        span = timing.finish(timing.Span(row.started_at, row.last_activity_at, row.active_seconds),
                             end, idle_limit)
        row.active_seconds, row.last_activity_at, row.ended_at = span.active_seconds, end, end


@dataclass(frozen=True)
class OpenResult:
    granted: bool
    token: int = 0
    expires_at: datetime | None = None
    holder: Holder | None = None  # who holds it when refused


async def open_image(session: AsyncSession, image: Image, *, user_id: int, connection_id: str,
                     ttl: float, take_over: bool, now: datetime, idle_limit: float,
                     skip_locked: bool = False, start: bool = True) -> OpenResult | None:
    """Grant or refuse the lease; ``None`` when ``skip_locked`` and another transaction has it.
    ``start``: a grant puts a new or rejected image in progress (not for a reviewer's lock)."""
    row = await _locked_row(session, image, skip_locked=skip_locked)
    if row is None:
        return None
    before = locks.Lease.of(row)
    decision = locks.decide_open(before, user_id=user_id, connection_id=connection_id, now=now,
                                 ttl=timedelta(seconds=ttl), take_over=take_over)
    if isinstance(decision, locks.Refused):
        return OpenResult(False, holder=await holder(session, decision.holder_id))
    lease = decision.lease
    _write(row, lease, now)
    if lease.token != before.token:
        if before.holder_id is not None:
            await _end_session(session, image.id, before.token, now, idle_limit)
        session.add(LabelingSession(project_id=image.project_id, image_id=image.id, user_id=user_id,
                                    lock_token=lease.token, started_at=now, last_activity_at=now,
                                    active_seconds=0.0))
        state = "taken_over" if decision.previous_holder is not None else "granted"
        # The seq first (the project row), then the image's state: the order of state changes.
        seq = await reserve_seqs(session, image.project_id, 1)
        started = await image_states.start(session, image.id, now) if start else None
        await _log_lock(session, image.project_id, image.id, state,
                        await holder(session, user_id), lease.expires_at, user_id, seq=seq,
                        image_state=started)
    return OpenResult(True, lease.token, lease.expires_at)


async def release_image(session: AsyncSession, image: Image, *, user_id: int,
                        connection_id: str | None, now: datetime, idle_limit: float) -> bool:
    row = await _locked_row(session, image)
    assert row is not None
    before = locks.Lease.of(row)
    lease = locks.release(before, user_id=user_id, connection_id=connection_id)
    if lease is None:
        return False
    _write(row, lease, now)
    await _end_session(session, image.id, before.token, now, idle_limit)
    await _log_lock(session, image.project_id, image.id, "released", None, None, user_id)
    return True


async def release_connection(session: AsyncSession, *, user_id: int, connection_id: str,
                             now: datetime, idle_limit: float) -> list[int]:
    """Release every lease this connection holds (a clean close); returns project ids touched."""
    rows = (await session.execute(select(ImageLock.image_id).where(
        ImageLock.connection_id == connection_id, ImageLock.holder_id == user_id))).scalars().all()
    projects = []
    for image_id in rows:
        image = await session.get(Image, image_id)
        if image is not None and await release_image(session, image, user_id=user_id,
                                                     connection_id=connection_id, now=now,
                                                     idle_limit=idle_limit):
            projects.append(image.project_id)
    return projects


async def renew(session: AsyncSession, *, user_id: int, connection_id: str, now: datetime,
                ttl: float, active: bool, idle_limit: float) -> list[int]:
    """Heartbeat: extend this connection's live leases; returns the image ids renewed."""
    rows = (await session.execute(select(ImageLock).where(
        ImageLock.connection_id == connection_id, ImageLock.holder_id == user_id,
        ImageLock.expires_at > now).with_for_update())).scalars().all()
    renewed = []
    for row in rows:
        lease = locks.renew(locks.Lease.of(row), connection_id=connection_id, now=now,
                            ttl=timedelta(seconds=ttl))
        if lease is None:
            continue
        row.expires_at = lease.expires_at
        renewed.append(row.image_id)
        if active:
            await touch(session, row.image_id, row.token, now, idle_limit)
    return renewed


async def touch(session: AsyncSession, image_id: int, token: int, now: datetime,
                idle_limit: float) -> None:
    """Activity on an image (an op, an active heartbeat) for labeling time."""
    rows = (await session.execute(select(LabelingSession).where(
        LabelingSession.image_id == image_id, LabelingSession.lock_token == token,
        LabelingSession.ended_at.is_(None)))).scalars()
    for row in rows:
        span = timing.touch(timing.Span(row.started_at, row.last_activity_at, row.active_seconds),
                            now, idle_limit)
        row.last_activity_at, row.active_seconds = span.last_activity_at, span.active_seconds


async def expire_due(session: AsyncSession, *, now: datetime, idle_limit: float,
                     limit: int = 200) -> set[int]:
    """Free lapsed leases (any process may run this; row locks keep it once-only)."""
    rows = (await session.execute(select(ImageLock).where(
        ImageLock.holder_id.is_not(None), ImageLock.expires_at <= now)
        .limit(limit).with_for_update(skip_locked=True))).scalars().all()
    projects: set[int] = set()
    for row in rows:
        lease = locks.expire(locks.Lease.of(row), now)
        if lease is None:
            continue
        old_token, old_holder = row.token, row.holder_id
        _write(row, lease, now)
        await _end_session(session, row.image_id, old_token, now, idle_limit)
        await _log_lock(session, row.project_id, row.image_id, "expired", None, None, old_holder)
        projects.add(row.project_id)
    return projects


async def next_image(
    session: AsyncSession, *, project_id: int, user_id: int, connection_id: str,
    after: int | None, direction: Literal["next", "previous"], images: Sequence[int] | None,
    flt: ImageFilter | None, rules: skip.SkipRules, ttl: float, now: datetime, idle_limit: float,
    queue: Literal["label", "review"] = "label", own: bool = False,
) -> tuple[Image, OpenResult] | None:
    """Choose and lock in one step: a candidate another transaction is locking is skipped.

    ``label`` queue: going forward, images not finished (done or accepted) unless the filter
    names a state; the ones assigned to me first; none assigned to someone else unless the
    selection names it. ``review`` queue: done images, not my own unless ``own``,
    never one another reviewer (or anyone) has open; the lock taken does not start the image."""
    mine = user_id
    if queue == "review":
        rules = skip.SkipRules(skip_labeled_by_others=False, skip_locked_by_others=True)
    by_other_objects = exists().where(LabelObjectRow.image_id == Image.id,
                                      LabelObjectRow.created_by.is_not(None),
                                      LabelObjectRow.created_by != mine)
    by_other_labels = exists().where(ImageLabel.image_id == Image.id,
                                     ImageLabel.created_by.is_not(None),
                                     ImageLabel.created_by != mine)
    locked_other = exists().where(ImageLock.image_id == Image.id, ImageLock.holder_id.is_not(None),
                                  ImageLock.holder_id != mine, ImageLock.expires_at > now)
    # An image open in another tab of mine is never handed out again.
    mine_elsewhere = exists().where(ImageLock.image_id == Image.id, ImageLock.holder_id == mine,
                                    ImageLock.connection_id != connection_id,
                                    ImageLock.expires_at > now)
    stmt: Any = select(Image.id, or_(by_other_objects, by_other_labels), locked_other).where(
        Image.project_id == project_id, ~mine_elsewhere)
    if flt is not None:
        stmt = apply_filter(stmt, flt, now)
    if images is not None:
        stmt = stmt.where(Image.id.in_(list(images)))
    assigned_me = exists().where(ImageAssignment.image_id == Image.id,
                                 ImageAssignment.user_id == mine)
    first: list[Any] = []
    if queue == "review":
        stmt = stmt.where(Image.state == State.DONE.value)
        if not own:
            stmt = stmt.where(or_(Image.done_by.is_(None), Image.done_by != mine))
    elif direction == "next":
        if flt is None or flt.state is None:
            stmt = stmt.where(Image.state.not_in([s.value for s in FINISHED]))
        if images is None:
            stmt = stmt.where(~exists().where(ImageAssignment.image_id == Image.id,
                                              ImageAssignment.user_id != mine))
        # My assigned images first (all of them from the start, those ahead when walking on;
        # one skipped is met again on the next walk from the start), then the rest in order.
        first = [case((assigned_me, 0), else_=1)]
    if after is not None:
        stmt = stmt.where(Image.id > after if direction == "next" else Image.id < after)
    if rules.skip_labeled_by_others:
        stmt = stmt.where(~or_(by_other_objects, by_other_labels))
    if rules.skip_locked_by_others:
        stmt = stmt.where(~locked_other)
    stmt = stmt.order_by(*first, Image.id.asc() if direction == "next" else Image.id.desc())
    stmt = stmt.limit(200)
    candidates = [skip.Candidate(int(i), bool(locked), bool(labeled))
                  for i, labeled, locked in (await session.execute(stmt)).all()]
    for cand in candidates:
        if not skip.eligible(cand, rules):
            continue
        image = await session.get(Image, cand.image_id)
        if image is None:
            continue
        result = await open_image(session, image, user_id=user_id, connection_id=connection_id,
                                  ttl=ttl, take_over=False, now=now, idle_limit=idle_limit,
                                  skip_locked=True, start=queue == "label")
        if result is None:
            continue  # another labeler is taking it right now
        if result.granted or not rules.skip_locked_by_others:
            return image, result
    return None
