"""Routes: classification label suggestions, and accepting them.

``POST /api/v1/projects/{id}/suggestions`` (``view``) scores the project's labels for a list of
images (or the images of a filter) by a k-nearest-neighbour vote of the images people labeled
(``server/ai/ranking.py``; the feature chosen per project by leave-one-out accuracy).
``POST /api/v1/projects/{id}/suggestions/accept`` (``label``) adds chosen labels with source
``auto`` through the op log (live, logged with inverses) and marks the images auto-labeled;
images someone else holds the lock of are skipped and reported.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import _label_store as label_store
from server._oplog import PendingOp, append_ops
from server._web import parse_as, path_int, project_access, read_body, unit_of_work
from server.ai import index
from server.ai._ready import not_ready
from server.ai.features import FEATURE_KEYS
from server.ai.ranking import suggest
from server.classification import AddLabel, ClassificationError, apply_label_op, normalize_label
from server.errors import ApiError, invalid
from server.image_query import DbId, ImageFilter, apply_filter
from server.models import Image, ImageLock, utcnow
from server.permissions import Privilege

__all__ = ["routes"]

MAX_IMAGES = 10_000


class SuggestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[DbId] | None = Field(default=None, max_length=MAX_IMAGES)
    filter: dict[str, Any] | None = None


class AcceptItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: DbId
    labels: list[str] = Field(min_length=1, max_length=20)

    @field_validator("labels")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        try:
            return list(dict.fromkeys(normalize_label(v) for v in value))
        except ClassificationError as exc:
            raise ValueError(exc.message) from None


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[AcceptItem] = Field(min_length=1, max_length=MAX_IMAGES)


async def _images(session: AsyncSession, project_id: int, wanted: list[int]) -> list[int]:
    """The ids, all of this project (404 naming the others)."""
    found: list[int] = []
    unique = sorted(set(wanted))
    for start in range(0, len(unique), 500):
        found += (await session.execute(select(Image.id).where(
            Image.project_id == project_id, Image.id.in_(unique[start : start + 500])))).scalars().all()
    missing = sorted(set(unique) - set(found))
    if missing:
        raise ApiError(404, "not_found", f"{len(missing)} image(s) not in this project",
                       {"image_ids": missing[:100]})
    return list(dict.fromkeys(wanted))


async def _targets(session: AsyncSession, project_id: int, body: SuggestIn) -> list[int]:
    if (body.images is None) == (body.filter is None):
        raise invalid("give either images or filter")
    if body.images is not None:
        return await _images(session, project_id, body.images)
    flt = parse_as(ImageFilter, body.filter)
    ids = list((await session.execute(apply_filter(
        select(Image.id).where(Image.project_id == project_id), flt)
        .order_by(Image.id).limit(MAX_IMAGES + 1))).scalars())
    if len(ids) > MAX_IMAGES:
        raise invalid(f"the filter matches more than {MAX_IMAGES} images; narrow it")
    return ids


async def suggestions(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, SuggestIn)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        ids = await _targets(session, project_id, body)
        snap = await index.snapshot(session, project_id, FEATURE_KEYS)
        rows = snap.rows_of(ids)
        if ids and not (rows >= 0).any():
            ready = False
        else:
            ready = True
            ex = await index.examples(session, project_id, snap)
            view, accuracy = await index.view_for(session, project_id, snap, ex)
            found = await asyncio.to_thread(suggest, snap, view, ex, rows[rows >= 0])
            by_row = {s.row: s for s in found}
            items, pending = [], []
            for image_id, row in zip(ids, rows, strict=True):
                hit = by_row.get(int(row)) if row >= 0 else None
                if hit is None:
                    pending.append(image_id)
                else:
                    items.append({"image": image_id, "labels": [
                        {"label": name, "score": score} for name, score in hit.labels]})
            return JSONResponse({
                "labeled_examples": int(ex.rows.size), "feature": view.name,
                "accuracy": accuracy.get(view.name), "items": items, "pending": pending})
    assert not ready
    raise await not_ready(request.app.state.sessions, project_id, ids, "suggestions")


async def _locked_by_others(session: AsyncSession, ids: list[int], user_id: int) -> set[int]:
    now = utcnow()
    out: set[int] = set()
    for start in range(0, len(ids), 500):
        out.update((await session.execute(select(ImageLock.image_id).where(
            ImageLock.image_id.in_(ids[start : start + 500]), ImageLock.holder_id.is_not(None),
            ImageLock.holder_id != user_id, ImageLock.expires_at > now))).scalars())
    return out


async def accept(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, AcceptIn)
    async with unit_of_work(request) as (session, user):
        # The project row first, as every writer of label state does (server/labels.py).
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        wanted = await _images(session, project_id, [item.image for item in body.items])
        names = {n for item in body.items for n in item.labels}
        known = await label_store.label_ids(session, project_id, names)
        unknown = sorted(names - set(known))
        if unknown:
            raise invalid(f"not labels of this project: {', '.join(unknown[:20])}",
                          {"labels": unknown[:100]})
        locked = await _locked_by_others(session, wanted, user.id)
        labels_of: dict[int, list[str]] = {}
        for item in body.items:
            labels_of.setdefault(item.image, []).extend(
                n for n in item.labels if n not in labels_of.get(item.image, []))
        states = await label_store.read_labels(session, [i for i in wanted if i not in locked])
        changed: dict[int, Any] = {}
        pending: list[PendingOp] = []
        applied: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for image_id in wanted:
            if image_id in locked:
                skipped.append({"image": image_id, "reason": "locked"})
                continue
            state = states[image_id]
            added: list[str] = []
            for name in labels_of[image_id]:
                if any(s.label == name for s in state):
                    continue  # never moves the default of a label a person set
                op = AddLabel(name, "auto")
                state, inverse = apply_label_op(state, op, user.id)
                assert inverse is not None
                pending.append(PendingOp(image_id, op.kind, op.to_dict(), inverse.to_dict()))
                added.append(name)
            if added:
                changed[image_id] = state
                applied.append({"image": image_id, "labels": added})
            else:
                skipped.append({"image": image_id, "reason": "already_labeled"})
        await label_store.write_labels(session, project_id, changed)
        last = await append_ops(session, project_id, user.id, pending, "rest")
        ids = sorted(changed)
        for start in range(0, len(ids), 500):
            await session.execute(update(Image).where(Image.id.in_(ids[start : start + 500]))
                                  .values(auto_labeled=True))
        return JSONResponse({"applied": applied, "skipped": skipped, "seq": last})


routes = [
    Route("/api/v1/projects/{project_id}/suggestions", suggestions, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/suggestions/accept", accept, methods=["POST"]),
]
