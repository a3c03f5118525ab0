"""Supervisor figures from what really happened (labeling sessions and the op log), and the audit log.

``GET /api/v1/projects/{id}/stats`` (``view_stats``): per user and per day — active seconds,
images labeled, objects created and edited, ops — plus time per image and who holds what now.
``GET /api/v1/projects/{id}/ops`` (``review`` or ``view_stats``): pages through the op log.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._web import path_int, project_access, query_int, unit_of_work
from server._workflow_stats import state_counts, workflow_stats
from server.errors import forbidden
from server.hub.leases import iso
from server.hub.timing import Span, touch
from server.models import Image, ImageLabel, ImageLock, LabelingSession, OpLogEntry, User, utcnow
from server.permissions import Privilege, allowed
from server.protocol import ProgressEvent

OBJECT_KINDS_CREATE = frozenset({"create"})
NON_EDIT_KINDS = frozenset({"lock", "members", "rename_label", "delete_label", "state", "assign"})


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


async def _names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(ids)))
    return {uid: name for uid, name in rows}  # names are required: emails stay private


async def project_stats(session: AsyncSession, project_id: int, idle_limit: float) -> dict[str, Any]:
    now = utcnow()
    per: dict[tuple[int, str], dict[str, Any]] = defaultdict(
        lambda: {"active_seconds": 0.0, "images": set(), "objects_created": 0,
                 "objects_edited": 0, "ops": 0})
    per_image: dict[int, float] = defaultdict(float)
    sessions = (await session.execute(select(LabelingSession).where(
        LabelingSession.project_id == project_id))).scalars()
    for s in sessions:
        seconds = s.active_seconds
        if s.ended_at is None:  # still open: count up to now, as the rules would at release
            seconds = touch(Span(s.started_at, s.last_activity_at, s.active_seconds), now,
                            idle_limit).active_seconds
        per[(s.user_id, _day(s.started_at))]["active_seconds"] += seconds
        per_image[s.image_id] += seconds
    ops = await session.execute(
        select(OpLogEntry.user_id, OpLogEntry.created_at, OpLogEntry.kind, OpLogEntry.image_id)
        .where(OpLogEntry.project_id == project_id, OpLogEntry.user_id.is_not(None),
               OpLogEntry.kind.not_in(NON_EDIT_KINDS)))
    for user_id, created_at, kind, image_id in ops:
        assert user_id is not None  # filtered above
        entry = per[(user_id, _day(created_at))]
        entry["ops"] += 1
        if image_id is not None:
            entry["images"].add(image_id)
        if kind in OBJECT_KINDS_CREATE:
            entry["objects_created"] += 1
        elif not kind.endswith("_label") and kind != "set_labels":
            entry["objects_edited"] += 1
    names = await _names(session, {uid for uid, _ in per})
    rows = [{"user": {"id": uid, "name": names.get(uid, str(uid))}, "day": day,
             "active_seconds": round(v["active_seconds"], 1), "images_labeled": len(v["images"]),
             "objects_created": v["objects_created"], "objects_edited": v["objects_edited"],
             "ops": v["ops"],
             "objects_per_hour": round(v["objects_created"] / (v["active_seconds"] / 3600), 1)
             if v["active_seconds"] >= 60 else None}
            for (uid, day), v in sorted(per.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    holders = await session.execute(
        select(ImageLock.image_id, ImageLock.holder_id, ImageLock.expires_at, Image.name)
        .join(Image, Image.id == ImageLock.image_id)
        .where(ImageLock.project_id == project_id, ImageLock.holder_id.is_not(None),
               ImageLock.expires_at > now))
    held = [(i, h, e, n) for i, h, e, n in holders if h is not None]
    holder_names = await _names(session, {h for _, h, _, _ in held})
    return {
        "per_user_day": rows,
        "per_image": [{"image": i, "active_seconds": round(s, 1)} for i, s in sorted(per_image.items())],
        "locks": [{"image": i, "image_name": n, "holder": {"id": h, "name": holder_names.get(h, str(h))},
                   "expires_at": iso(e)} for i, h, e, n in held],
    }


async def stats(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW_STATS)
        body = await project_stats(session, project_id, request.app.state.settings.idle_limit_seconds)
        counts = await progress(session, project_id, 0)
        body["progress"] = counts.model_dump(exclude={"type", "seq"})
        body["workflow"] = await workflow_stats(session, project_id)
        return JSONResponse(body)


async def ops(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    since = query_int(request, "since", 0, 0, 2**62)
    limit = query_int(request, "limit", 200, 1, 1000)
    image = query_int(request, "image", 0, 0, 2**31 - 1)
    user_filter = query_int(request, "user", 0, 0, 2**31 - 1)
    async with unit_of_work(request) as (session, user):
        _project, actor = await project_access(session, user, project_id, Privilege.VIEW)
        if not (allowed(actor, Privilege.REVIEW) or allowed(actor, Privilege.VIEW_STATS)):
            raise forbidden("the audit log needs the 'review' or 'view_stats' privilege")
        stmt = select(OpLogEntry).where(OpLogEntry.project_id == project_id, OpLogEntry.seq > since)
        if image:
            stmt = stmt.where(OpLogEntry.image_id == image)
        if user_filter:
            stmt = stmt.where(OpLogEntry.user_id == user_filter)
        rows = (await session.execute(stmt.order_by(OpLogEntry.seq).limit(limit))).scalars().all()
        head = (await session.execute(select(func.max(OpLogEntry.seq)).where(
            OpLogEntry.project_id == project_id))).scalar_one_or_none() or 0
        items = [{"seq": r.seq, "image": r.image_id, "user": r.user_id, "kind": r.kind, "op": r.op,
                  "client_op_id": r.client_op_id, "origin": r.origin, "reverts_seq": r.reverts_seq,
                  "created_at": iso(r.created_at)} for r in rows]
        next_since = items[-1]["seq"] if len(items) == limit else None
        return JSONResponse({"ops": items, "next_since": next_since, "head": head})


routes = [
    Route("/api/v1/projects/{project_id}/stats", stats, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/ops", ops, methods=["GET"]),
]


async def progress(session: AsyncSession, project_id: int, seq: int) -> ProgressEvent:
    """Project counts for dashboards: labeled, in progress (locked, not labeled), untouched
    (these count labels given at upload), and images by workflow state (they do not)."""
    now = utcnow()
    labeled = or_(Image.object_count > 0,
                  select(ImageLabel.image_id).where(ImageLabel.image_id == Image.id).exists())
    locked = select(ImageLock.image_id).where(
        ImageLock.image_id == Image.id, ImageLock.holder_id.is_not(None),
        ImageLock.expires_at > now).exists()
    total, done, busy = (await session.execute(
        select(func.count(), func.count().filter(labeled), func.count().filter(locked & ~labeled))
        .select_from(Image).where(Image.project_id == project_id))).one()
    return ProgressEvent(project=project_id, seq=seq, total=total, labeled=done,
                         in_progress=busy, untouched=total - done - busy,
                         states=await state_counts(session, project_id))
