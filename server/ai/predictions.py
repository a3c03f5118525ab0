"""Routes: predictions — what a model says about images, kept apart from people's labels.

``POST /api/v1/projects/{id}/predictions`` (``label``): predict a list of images (or a
filter's) with a model (latest version unless given) in a ``predict`` job: 202 with the job.
``GET /api/v1/projects/{id}/predictions`` (``view``): ``?model=&status=&limit=&after=``; each
item says whether it is ``stale`` (its model's labels were renamed or deleted since: never
applied under another name). ``POST .../predictions/add`` (``label``): add chosen labels the
way accepted suggestions are (``server/ai/auto_labels.py``) and mark the predictions added;
stale ones are skipped. ``POST .../predictions/dismiss`` (``label``).
``POST .../auto-labels/confirm`` (``label``): a person reviewed images a model labeled; their
auto labels become manual ones (``confirm_auto_labels``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._web import path_int, project_access, query_int, read_body, unit_of_work
from server.ai._ready import job_info
from server.ai.auto_labels import (
    MAX_IMAGES,
    AddItem,
    add_auto_labels,
    confirm_auto_labels,
    project_images,
    target_images,
)
from server.ai.mapping import BUILTIN_THRESHOLD, mapped_labels, matches
from server.ai.model_store import PREDICT_KIND, current_labels, find_model, find_version
from server.errors import invalid
from server.image_query import DbId
from server.jobs import defer
from server.models import AiModel, AiModelVersion, Job, Prediction, utcnow
from server.permissions import Privilege

__all__ = ["routes"]

STATUSES = ("pending", "added", "dismissed")


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: DbId | str
    version: DbId | None = None
    images: list[DbId] | None = Field(default=None, max_length=MAX_IMAGES)
    filter: dict[str, Any] | None = None


class AddIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[AddItem] = Field(min_length=1, max_length=MAX_IMAGES)
    model: DbId | str | None = None


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[DbId] = Field(min_length=1, max_length=MAX_IMAGES)
    model: DbId | str | None = None


async def create(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, PredictIn)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.LABEL)
        model = await find_model(session, project_id, body.model)
        version = 0
        if model.kind == "trained":
            version = (await find_version(session, model, body.version)).version
        elif body.version not in (None, 0):
            raise invalid("the built-in model has no versions")
        ids = await target_images(session, project_id, body.images, body.filter)
        job_id = await defer(session, kind=PREDICT_KIND, project_id=project_id, params={
            "model_id": model.id, "version": version, "images": ids}, created_by=user.id)
        await session.flush()
        job = await session.get(Job, job_id)
        assert job is not None
        return JSONResponse({"job": job_info(job), "model": model.id, "version": version,
                             "images": len(ids)}, status_code=202)


class _Reader:
    """Turns prediction rows into items, reading each model and version once."""

    def __init__(self, session: AsyncSession, project_id: int) -> None:
        self.session = session
        self.project_id = project_id
        self.models: dict[int, AiModel] = {}
        self.labels: dict[tuple[int, int], list[Any]] = {}
        self.current: dict[int, str] | None = None

    async def item(self, p: Prediction) -> dict[str, Any]:
        if self.current is None:
            self.current = await current_labels(self.session, self.project_id)
        model = self.models.get(p.model_id)
        if model is None:
            model = self.models[p.model_id] = await self.session.get(AiModel, p.model_id)  # type: ignore[assignment]
        assert model is not None
        out: dict[str, Any] = {"id": p.id, "image": p.image_id, "model": p.model_id,
                               "model_name": model.name, "version": p.version}
        if model.kind == "builtin":
            labels, stale = mapped_labels(p.labels, model.mapping, self.current)
            out.update(labels=labels, classes=p.labels,
                       confident=[x["label"] for x in labels if x["score"] >= BUILTIN_THRESHOLD])
        else:
            key = (p.model_id, p.version)
            if key not in self.labels:
                row = (await self.session.execute(select(AiModelVersion).where(
                    AiModelVersion.model_id == p.model_id,
                    AiModelVersion.version == p.version))).scalar_one_or_none()
                self.labels[key] = [] if row is None else [
                    row.labels, float(row.head.get("threshold", 0.5))]
            known = self.labels[key]
            stale = not known or not matches(known[0], self.current)
            threshold = known[1] if known else 1.0
            out.update(labels=p.labels, confident=[
                x["label"] for x in p.labels if x["score"] >= threshold])
        out.update(objects=p.objects, status=p.status, stale=stale,
                   created_at=p.created_at.isoformat())
        return out


async def list_predictions(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise invalid(f"status must be one of {', '.join(STATUSES)}")
    limit = query_int(request, "limit", 100, 1, 1000)
    after = query_int(request, "after", 0, 0, 2**31 - 1)
    image = query_int(request, "image", 0, 0, 2**31 - 1)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        stmt = select(Prediction).where(Prediction.project_id == project_id, Prediction.id > after)
        if request.query_params.get("model"):
            model = await find_model(session, project_id, request.query_params["model"])
            stmt = stmt.where(Prediction.model_id == model.id)
        if status is not None:
            stmt = stmt.where(Prediction.status == status)
        if image:
            stmt = stmt.where(Prediction.image_id == image)
        rows = (await session.execute(stmt.order_by(Prediction.id).limit(limit + 1))).scalars().all()
        reader = _Reader(session, project_id)
        items = [await reader.item(p) for p in rows[:limit]]
        return JSONResponse({"items": items,
                             "next": items[-1]["id"] if len(rows) > limit else None})


async def _pending(session: AsyncSession, project_id: int, images: list[int],
                   model_ref: int | str | None) -> list[Prediction]:
    stmt = select(Prediction).where(Prediction.project_id == project_id,
                                    Prediction.status == "pending")
    if model_ref is not None:
        model = await find_model(session, project_id, model_ref)
        stmt = stmt.where(Prediction.model_id == model.id)
    out: list[Prediction] = []
    for start in range(0, len(images), 500):
        out += (await session.execute(stmt.where(
            Prediction.image_id.in_(images[start : start + 500])))).scalars().all()
    return out


async def _review(session: AsyncSession, ids: list[int], status: Literal["added", "dismissed"],
                  user_id: int) -> None:
    for start in range(0, len(ids), 500):
        await session.execute(update(Prediction).where(Prediction.id.in_(ids[start : start + 500]))
                              .values(status=status, reviewed_by=user_id, updated_at=utcnow()))


async def add(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, AddIn)
    async with unit_of_work(request) as (session, user):
        # The project row first, as every writer of label state does (server/labels.py).
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        images = await project_images(session, project_id, [i.image for i in body.items])
        pending = await _pending(session, project_id, images, body.model)
        reader = _Reader(session, project_id)
        fresh: dict[int, list[int]] = {}
        stale: set[int] = set()
        for p in pending:
            if (await reader.item(p))["stale"]:
                stale.add(p.image_id)
            else:
                fresh.setdefault(p.image_id, []).append(p.id)
        # An image whose predictions are all stale is not touched: its labels may mean
        # something else now. Images without a prediction take the labels as given.
        skip = {i: "stale" for i in stale if i not in fresh}
        added = await add_auto_labels(session, project_id, user.id, body.items, skip)
        done = {a["image"] for a in added.applied} | {
            s["image"] for s in added.skipped if s["reason"] == "already_labeled"}
        await _review(session, [pid for i in sorted(done) for pid in fresh.get(i, [])], "added",
                      user.id)
        return JSONResponse(added.as_json())


async def dismiss(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, DismissIn)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.LABEL)
        images = await project_images(session, project_id, body.images)
        pending = await _pending(session, project_id, images, body.model)
        await _review(session, [p.id for p in pending], "dismissed", user.id)
        return JSONResponse({"dismissed": len(pending)})


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[DbId] = Field(min_length=1, max_length=MAX_IMAGES)


async def confirm(request: Request) -> Response:
    """A person reviewed images that came from a model: their auto labels become theirs."""
    project_id = path_int(request, "project_id")
    body = await read_body(request, ConfirmIn)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        done = await confirm_auto_labels(session, project_id, user.id, body.images)
        return JSONResponse({"confirmed": done.applied, "skipped": done.skipped, "seq": done.seq})


routes = [
    Route("/api/v1/projects/{project_id}/predictions", create, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/predictions", list_predictions, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/predictions/add", add, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/predictions/dismiss", dismiss, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/auto-labels/confirm", confirm, methods=["POST"]),
]

