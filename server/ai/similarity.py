"""Routes: compute embeddings on demand, and similarity search.

``POST /api/v1/projects/{id}/embeddings`` (``upload``) defers an embed job;
``GET /api/v1/projects/{id}/images/{image_id}/similar`` and ``POST /api/v1/projects/{id}/similar``
(``view``) rank the project's images by cosine similarity of their feature vectors, to one image
or to the examples of a label. The numpy work runs in a worker thread. docs/ai.md explains the
method, docs/api.md the shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._label_store import label_ids
from server._web import path_int, project_access, query_bool, query_int, read_body, unit_of_work
from server.ai import index
from server.ai._ready import job_info, not_ready, request_embedding
from server.ai.embeddings import missing_count
from server.ai.features import FEATURE_KEYS
from server.ai.ranking import Snapshot, example_scores, row_scores
from server.ai.vectors import View, top_k
from server.errors import ApiError, invalid, not_found
from server.models import Image, ImageLabel, Job, LabelDef, Project
from server.permissions import Privilege

__all__ = ["routes"]

MAX_LIMIT = 200
Labeled = Literal["any", "true", "false"]


class SimilarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=200)
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    labeled: Labeled = "any"


async def request_embeddings(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.UPLOAD)
        pending = await missing_count(session, project_id, FEATURE_KEYS)
        job_id = await request_embedding(session, project_id, user.id)
        await session.flush()
        job = await session.get(Job, job_id)
        assert job is not None
        return JSONResponse({"job": job_info(job), "missing": pending}, status_code=202)


def _view(snap: Snapshot, raw: str | None) -> View | None:
    """The view named by ``?feature=`` (``None``: choose automatically)."""
    if raw is None or raw in ("", "auto"):
        return None
    keys = tuple(raw.split("+"))
    unknown = [k for k in keys if k not in FEATURE_KEYS]
    if unknown:
        raise invalid(f"feature: one of auto, {', '.join(FEATURE_KEYS)} or keys joined by '+'")
    return View(keys)


async def _auto_view(session: AsyncSession, project: Project, snap: Snapshot,
                     row: int | None = None) -> View:
    """The project's view; for one image lacking one of its features, the ones it has."""
    project_id = project.id
    ex = await index.examples(session, project_id, snap, project.seq)
    view, _ = await index.view_for(session, project_id, snap, ex)
    if row is not None and not bool(snap.usable(view)[row]):
        return View(tuple(k for k in snap.keys if bool(snap.present[k][row])))
    return view


Keep = Callable[[dict[str, Any]], bool]


def _labeled_filter(labeled: str, label: str | None, without: bool) -> Keep:
    def keep(item: dict[str, Any]) -> bool:
        if labeled != "any" and item["labeled"] != (labeled == "true"):
            return False
        return label is None or (label in item["labels"]) != without
    return keep


async def _details(session: AsyncSession, project_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for image_id, name, objects in await session.execute(
            select(Image.id, Image.name, Image.object_count)
            .where(Image.project_id == project_id, Image.id.in_(ids))):
        out[int(image_id)] = {"name": name, "objects": int(objects), "labels": []}
    for image_id, label in await session.execute(
            select(ImageLabel.image_id, LabelDef.name).join(LabelDef, LabelDef.id == ImageLabel.label_id)
            .where(ImageLabel.image_id.in_(ids))
            .order_by(ImageLabel.image_id, ImageLabel.created_at, ImageLabel.label_id)):
        if int(image_id) in out:
            out[int(image_id)]["labels"].append(label)
    for item in out.values():
        item["labeled"] = item["objects"] > 0 or bool(item["labels"])
    return out


async def ranked_items(session: AsyncSession, project_id: int, snap: Snapshot, scores: np.ndarray,
                       limit: int, keep: Keep) -> list[dict[str, Any]]:
    """The best ``limit`` images by score that pass ``keep``, in windows growing 4x: the
    filter is checked in the database for a window of candidates at a time."""
    usable = int(np.isfinite(scores).sum())
    window = min(max(4 * limit, 64), usable)
    seen = 0
    items: list[dict[str, Any]] = []
    while seen < usable and len(items) < limit:
        order = await asyncio.to_thread(top_k, scores, window)
        batch = order[seen:]
        seen = order.size
        for start in range(0, batch.size, 500):
            part = batch[start : start + 500]
            ids = [int(i) for i in snap.ids[part]]
            details = await _details(session, project_id, ids)
            for row, image_id in zip(part, ids, strict=True):
                item = details.get(image_id)
                if item is not None and keep(item) and len(items) < limit:
                    items.append({"image": image_id, "name": item["name"],
                                  "similarity": round(float(scores[row]), 4),
                                  "labels": item["labels"]})
        window = min(window * 4, usable)
    return items


async def similar_images(request: Request) -> Response:
    project_id, image_id = path_int(request, "project_id"), path_int(request, "image_id")
    limit = query_int(request, "limit", 20, 1, MAX_LIMIT)
    labeled = request.query_params.get("labeled", "any")
    if labeled not in ("any", "true", "false"):
        raise invalid("query parameter labeled must be any, true or false")
    label = request.query_params.get("label") or None
    without = query_bool(request, "without")
    async with unit_of_work(request) as (session, user):
        project, _ = await project_access(session, user, project_id, Privilege.VIEW)
        image = await session.get(Image, image_id)
        if image is None or image.project_id != project_id:
            raise not_found("image")
        snap = await index.snapshot(session, project_id, FEATURE_KEYS)
        row = int(snap.rows_of([image_id])[0])
        view = _view(snap, request.query_params.get("feature"))
        if row >= 0 and view is None:
            view = await _auto_view(session, project, snap, row)
        if row >= 0 and view is not None and bool(snap.usable(view)[row]):
            scores = await asyncio.to_thread(row_scores, snap, view, row)
            items = await ranked_items(session, project_id, snap, scores, limit,
                                       _labeled_filter(labeled, label, without))
            return JSONResponse({"feature": view.name, "items": items})
    raise await not_ready(request.app.state.sessions, project_id, [image_id], "similar images")


async def similar_to_label(request: Request) -> Response:
    """Images not carrying a label, ranked by similarity to the images that carry it (those
    labeled by people; any carrying it when people labeled none)."""
    project_id = path_int(request, "project_id")
    body = await read_body(request, SimilarIn)
    async with unit_of_work(request) as (session, user):
        project, _ = await project_access(session, user, project_id, Privilege.VIEW)
        found = await label_ids(session, project_id, [body.label])
        if not found:
            raise not_found("label")
        rows = (await session.execute(
            select(ImageLabel.image_id, ImageLabel.source).where(
                ImageLabel.label_id == found[body.label]))).all()
        carriers = [int(i) for i, _ in rows]
        manual = [int(i) for i, source in rows if source == "manual"]
        if not carriers:
            raise ApiError(422, "no_examples", f"no image carries the label {body.label!r} yet")
        snap = await index.snapshot(session, project_id, FEATURE_KEYS)
        example_ids = manual or carriers
        example_rows = snap.rows_of(example_ids)
        example_rows = example_rows[example_rows >= 0]
        if example_rows.size:
            view = _view(snap, request.query_params.get("feature"))
            if view is None:
                view = await _auto_view(session, project, snap)
            scores = await asyncio.to_thread(example_scores, snap, view, example_rows)
            carrier_rows = snap.rows_of(carriers)
            scores[carrier_rows[carrier_rows >= 0]] = -np.inf
            items = await ranked_items(session, project_id, snap, scores, body.limit,
                                       _labeled_filter(body.labeled, body.label, True))
            return JSONResponse({"feature": view.name, "label": body.label,
                                 "examples": len(example_ids), "items": items})
    raise await not_ready(request.app.state.sessions, project_id, example_ids,
                          f"images similar to {body.label!r}")


routes = [
    Route("/api/v1/projects/{project_id}/embeddings", request_embeddings, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/images/{image_id}/similar", similar_images, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/similar", similar_to_label, methods=["POST"]),
]
