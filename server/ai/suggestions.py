"""Routes: classification label suggestions, and accepting them.

``POST /api/v1/projects/{id}/suggestions`` (``view``) scores the project's labels for a list of
images (or the images of a filter) by a k-nearest-neighbour vote of the images people labeled
(``server/ai/ranking.py``; the feature chosen per project by leave-one-out accuracy).
``POST /api/v1/projects/{id}/suggestions/accept`` (``label``) adds chosen labels with source
``auto`` through the op log (live, logged with inverses) and marks the images auto-labeled;
images someone else holds the lock of are skipped and reported (``server/ai/auto_labels.py``,
shared with added predictions).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._web import path_int, project_access, read_body, unit_of_work
from server.ai import index
from server.ai._ready import not_ready
from server.ai.auto_labels import AddItem, add_auto_labels
from server.ai.features import FEATURE_KEYS
from server.ai.ranking import suggest
from server.image_query import DbId
from server.image_sets import MAX_IMAGES, target_images
from server.permissions import Privilege

__all__ = ["routes"]


class SuggestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[DbId] | None = Field(default=None, max_length=MAX_IMAGES)
    filter: dict[str, Any] | None = None


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[AddItem] = Field(min_length=1, max_length=MAX_IMAGES)


async def suggestions(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, SuggestIn)
    async with unit_of_work(request) as (session, user):
        project, _ = await project_access(session, user, project_id, Privilege.VIEW)
        ids = await target_images(session, project_id, body.images, body.filter)
        snap = await index.snapshot(session, project_id, FEATURE_KEYS)
        rows = snap.rows_of(ids)
        if ids and not (rows >= 0).any():
            ready = False
        else:
            ready = True
            ex = await index.examples(session, project_id, snap, project.seq)
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


async def accept(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, AcceptIn)
    async with unit_of_work(request) as (session, user):
        # The project row first, as every writer of label state does (server/labels.py).
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        added = await add_auto_labels(session, project_id, user.id, body.items)
        return JSONResponse(added.as_json())


routes = [
    Route("/api/v1/projects/{project_id}/suggestions", suggestions, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/suggestions/accept", accept, methods=["POST"]),
]
