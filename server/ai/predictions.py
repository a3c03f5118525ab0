"""Routes: predictions — what a model says about images, kept apart from people's labels.

``POST /api/v1/projects/{id}/predictions`` (``label``): predict a list of images (or a
filter's) with a model (latest version unless given) in a ``predict`` job: 202 with the job.
``GET /api/v1/projects/{id}/predictions`` (``view``): ``?model=&status=&limit=&after=``; each
item says whether it is ``stale`` (its model's labels were renamed or deleted since: never
applied under another name). ``POST .../predictions/add`` (``label``): add chosen labels the
way accepted suggestions are (``server/ai/auto_labels.py``) and a detector's chosen boxes, maybe
adjusted, as ``auto`` objects (``server/ai/auto_objects.py``), and mark the predictions added;
stale ones are skipped. ``POST .../predictions/dismiss`` (``label``).
``POST .../auto-labels/confirm`` (``label``): a person reviewed images a model labeled; their
auto labels become manual ones (``confirm_auto_labels``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._web import path_int, project_access, query_int, read_body, unit_of_work
from server.ai._ready import job_info
from server.ai.auto_labels import Added, AddItem, add_auto_labels, confirm_auto_labels
from server.ai.auto_objects import AddedObjects, add_auto_objects
from server.ai.imported import IMPORTED
from server.ai.mapping import BUILTIN_THRESHOLD, mapped_labels, matches
from server.ai.model_store import PREDICT_KIND, current_labels, find_model, find_version
from server.errors import ApiError, invalid
from server.image_query import DbId
from server.image_sets import MAX_IMAGES, locked_by_others, project_images, target_images
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


class BoxIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    w: float = Field(gt=0, allow_inf_nan=False)
    h: float = Field(gt=0, allow_inf_nan=False)


class ObjectChoice(BaseModel):
    """One of a prediction's boxes to add (``index`` into its ``objects``), maybe adjusted."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0, lt=10_000)
    geometry: BoxIn | None = None


class AddPredictionItem(BaseModel):
    """An image's labels to add (``image``, as before), or a prediction's (``prediction``):
    its chosen ``labels`` and ``objects`` (default: the boxes scoring at least the version's
    threshold, when ``labels`` is empty too)."""

    model_config = ConfigDict(extra="forbid")
    image: DbId | None = None
    prediction: DbId | None = None
    labels: list[str] = Field(default_factory=list, max_length=20)
    objects: list[ObjectChoice] | None = Field(default=None, max_length=1000)

    @field_validator("labels")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return AddItem.model_validate({"image": 1, "labels": value or ["x"]}).labels if value else []

    @model_validator(mode="after")
    def _target(self) -> AddPredictionItem:
        if self.prediction is None:
            if self.image is None:
                raise ValueError("give image or prediction")
            if not self.labels or self.objects is not None:
                raise ValueError("without a prediction, give labels (objects come from one)")
        return self


class AddIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[AddPredictionItem] = Field(min_length=1, max_length=MAX_IMAGES)
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
        if model.kind == IMPORTED:
            raise invalid(f"model {model.name!r} was imported with its predictions and has no "
                          "weights: it cannot predict; review its predictions instead")
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
            out.update(labels=p.labels, threshold=round(threshold, 4), confident=[
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


async def _chosen(session: AsyncSession, project_id: int, items: list[AddPredictionItem]
                  ) -> dict[int, Prediction]:
    """The predictions items name, by id (404 naming those not of this project)."""
    ids = sorted({i.prediction for i in items if i.prediction is not None})
    found: dict[int, Prediction] = {}
    for start in range(0, len(ids), 500):
        found.update((p.id, p) for p in (await session.execute(select(Prediction).where(
            Prediction.project_id == project_id,
            Prediction.id.in_(ids[start : start + 500])))).scalars())
    missing = [i for i in ids if i not in found]
    if missing:
        raise ApiError(404, "not_found", f"{len(missing)} prediction(s) not in this project",
                       {"prediction_ids": missing[:100]})
    return found


def _boxes(item: AddPredictionItem, p: Prediction, threshold: float
           ) -> list[tuple[str, dict[str, float]]]:
    """The boxes an item adds from its prediction (422 for an index it does not have)."""
    objects = p.objects or []
    if item.objects is None:
        if item.labels:
            return []
        return [(o["label"], dict(o["geometry"])) for o in objects if o["score"] >= threshold]
    out = []
    for choice in item.objects:
        if choice.index >= len(objects):
            raise invalid(f"prediction {p.id} has {len(objects)} objects; no index {choice.index}",
                          {"prediction": p.id, "index": choice.index})
        o = objects[choice.index]
        g = choice.geometry.model_dump() if choice.geometry is not None else dict(o["geometry"])
        out.append((o["label"], g))
    return out


async def add(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, AddIn)
    async with unit_of_work(request) as (session, user):
        # The project row first, as every writer of label state does (server/labels.py).
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        chosen = await _chosen(session, project_id, body.items)
        image_of: list[int] = []
        for item in body.items:
            owner = chosen[item.prediction].image_id if item.prediction is not None else None
            if owner is not None and item.image is not None and item.image != owner:
                raise invalid(f"prediction {item.prediction} is of image {owner}, not {item.image}")
            image_of.append(int(owner if owner is not None else item.image))  # type: ignore[arg-type]
        images = await project_images(session, project_id, image_of)
        # An item naming an image concerns its pending predictions; one naming a prediction,
        # that prediction only (adding a detector's boxes leaves a classifier's alone).
        plain = [i for item, i in zip(body.items, image_of, strict=True) if item.prediction is None]
        pending = await _pending(session, project_id, list(dict.fromkeys(plain)), body.model) \
            if plain else []
        reader = _Reader(session, project_id)
        fresh: dict[int, list[int]] = {}
        stale: set[int] = set()
        for p in [*pending, *(p for p in chosen.values() if p.status == "pending")]:
            if (await reader.item(p))["stale"]:
                stale.add(p.image_id)
            elif p.id not in fresh.get(p.image_id, []):
                fresh.setdefault(p.image_id, []).append(p.id)
        # An image whose predictions are all stale is not touched: its labels may mean
        # something else now. Images without a prediction take the labels as given.
        skip: dict[int, str] = {i: "stale" for i in stale if i not in fresh}
        for item, image in zip(body.items, image_of, strict=True):
            named = chosen.get(item.prediction) if item.prediction is not None else None
            if named is not None and (await reader.item(named))["stale"]:
                skip[image] = "stale"
            elif named is not None and named.status != "pending":
                skip.setdefault(image, named.status)
        for image_id in await locked_by_others(session, images, user.id):
            skip.setdefault(image_id, "locked")
        boxes: dict[int, list[tuple[str, dict[str, float]]]] = {}
        label_items: list[AddItem] = []
        asked_objects: set[int] = set()
        for item, image in zip(body.items, image_of, strict=True):
            if item.labels:
                label_items.append(AddItem(image=image, labels=item.labels))
            named = chosen.get(item.prediction) if item.prediction is not None else None
            if named is not None and (named.objects or item.objects is not None):
                known = await reader.item(named)
                asked_objects.add(image)
                if image not in skip:
                    boxes.setdefault(image, []).extend(
                        _boxes(item, named, known.get("threshold", 1.0)))
        added = Added()
        if label_items:
            added = await add_auto_labels(session, project_id, user.id, label_items, skip)
        objects = await add_auto_objects(session, project_id, user.id, boxes)
        result = _merged(image_of, skip, added, objects, asked_objects, label_items)
        done = {a["image"] for a in result["applied"]} | {
            s["image"] for s in result["skipped"] if s["reason"] == "already_labeled"}
        await _review(session, [pid for i in sorted(done) for pid in fresh.get(i, [])], "added",
                      user.id)
        return JSONResponse(result)


def _merged(images: list[int], skip: dict[int, str], labels: Added, objects: AddedObjects,
            asked_objects: set[int], label_items: list[AddItem]) -> dict[str, Any]:
    """One entry per image, in the request's order: what was added, or why nothing was."""
    by_labels = {a["image"]: a["labels"] for a in labels.applied}
    asked_labels = {i.image for i in label_items}
    applied: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for image in dict.fromkeys(images):
        if image in skip:
            skipped.append({"image": image, "reason": skip[image]})
            continue
        new_labels = by_labels.get(image, [])
        new_objects = objects.added.get(image, [])
        if not new_labels and not new_objects:
            entry: dict[str, Any] = {"image": image, "reason": "already_labeled"}
            if image in asked_objects:
                entry["duplicates"] = objects.duplicates.get(image, 0)
            skipped.append(entry)
            continue
        out: dict[str, Any] = {"image": image}
        if image in asked_labels or not asked_objects:
            out["labels"] = new_labels
        if image in asked_objects:
            out.update(objects=new_objects, duplicates=objects.duplicates.get(image, 0))
        applied.append(out)
    seqs = [s for s in (labels.seq, objects.seq) if s is not None]
    return {"applied": applied, "skipped": skipped, "seq": max(seqs) if seqs else None}


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

