"""Routes: a project's classifiers — the built-in ImageNet one and the ones trained on its labels.

``GET /api/v1/projects/{id}/models`` (``view``): the models, each trained one with its versions.
``POST /api/v1/projects/{id}/models`` (``manage_labels``): train a model (a new one, or the next
version of one with that name) in a ``train`` job; 422 when the labeled images cannot train it.
``GET .../models/{model}`` (``view``): one model with every version's metrics.
``PUT .../models/{model}/mapping`` (``manage_labels``): the built-in model's ImageNet class ->
label mapping (names not yet labels become labels).
``GET .../models/{model}/download`` (``view``): a trained version as a ZIP (ONNX head, labels,
README). ``task: detection`` trains a box detector on the project's boxes instead
(server/ai/detector_jobs.py). ``{model}`` is the model's id or name (the built-in one is ``imagenet``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import _label_store as label_store
from server._web import path_int, project_access, query_int, read_body, unit_of_work
from server.ai._ready import job_info
from server.ai.detector_export import detector_bundle
from server.ai.detector_jobs import box_examples, detector_of
from server.ai.detector_training import shortfalls as detector_shortfalls
from server.ai.export import bundle
from server.ai.features import FEATURE_KEYS, ModelError
from server.ai.imported import IMPORTED
from server.ai.mapping import BUILTIN_NAME
from server.ai.model_store import (
    TRAIN_KIND,
    current_labels,
    ensure_builtin,
    examples,
    find_model,
    find_version,
    head_of,
    model_out,
    versions,
)
from server.ai.training import shortfalls
from server.classification import ClassificationError, normalize_label
from server.errors import ApiError, invalid
from server.jobs import ACTIVE, defer
from server.models import AiModel, Job, utcnow
from server.permissions import Privilege

__all__ = ["imagenet_classes", "routes"]


@cache
def imagenet_classes() -> frozenset[str]:
    """The built-in model's 1000 class names (read here: the web process never loads the
    network, nor onnxruntime)."""
    text = resources.files("server.ai").joinpath("imagenet_classes.txt").read_text("utf-8")
    return frozenset(text.splitlines())


def _label(value: str) -> str:
    try:
        return normalize_label(value)
    except ClassificationError as exc:
        raise ValueError(exc.message) from None


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: Literal["classification", "detection"] = "classification"
    name: str = Field(min_length=1, max_length=200)
    labels: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    multi_label: bool | None = None
    features: list[str] | None = Field(default=None, min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value or value.isdigit() or value == BUILTIN_NAME:
            raise ValueError(f"must be a name, not a number nor {BUILTIN_NAME!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(_label(v) for v in value))

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[str] | None) -> list[str] | None:
        unknown = [k for k in value or [] if k not in FEATURE_KEYS]
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {list(FEATURE_KEYS)}")
        return value


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mapping: dict[str, str] = Field(max_length=1000)

    @field_validator("mapping")
    @classmethod
    def _targets(cls, value: dict[str, str]) -> dict[str, str]:
        return {cls_name: _label(label) for cls_name, label in value.items()}


def model_ref(request: Request) -> int | str:
    raw = str(request.path_params["model"])
    return path_int(request, "model") if raw.isdigit() else raw


async def _training_jobs(session: AsyncSession, project_id: int) -> dict[int, Job]:
    """The queued or running train job of each model (its newest)."""
    jobs = (await session.execute(select(Job).where(
        Job.project_id == project_id, Job.kind == TRAIN_KIND, Job.status.in_(ACTIVE))
        .order_by(Job.id))).scalars()
    return {int((j.params or {}).get("model_id", 0)): j for j in jobs}


async def list_models(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        await ensure_builtin(session, project_id)
        current = await current_labels(session, project_id)
        training = await _training_jobs(session, project_id)
        rows = (await session.execute(select(AiModel).where(
            AiModel.project_id == project_id).order_by(AiModel.id))).scalars().all()
        rows = sorted(rows, key=lambda m: m.kind != "builtin")  # the built-in one first
        out = [model_out(m, await versions(session, m.id), current, training.get(m.id))
               for m in rows]
        return JSONResponse({"models": out})


async def get_model(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        model = await find_model(session, project_id, model_ref(request))
        training = await _training_jobs(session, project_id)
        return JSONResponse(model_out(model, await versions(session, model.id),
                                      await current_labels(session, project_id),
                                      training.get(model.id), with_metrics=True))


async def train(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, TrainIn)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_LABELS, lock=True)
        model = (await session.execute(select(AiModel).where(
            AiModel.project_id == project_id, AiModel.name == body.name))).scalar_one_or_none()
        if model is not None and model.kind == IMPORTED:
            raise invalid(f"model {body.name!r} was imported and cannot be trained; train "
                          "another name")
        if model is not None and model.task != body.task:
            raise invalid(f"model {body.name!r} is a {model.task} model; train another name "
                          f"for {body.task}")
        if body.task == "detection":
            if body.multi_label or body.features:
                raise invalid("a detector takes no multi_label nor features: it reads the "
                              "network's feature maps and finds any number of boxes")
            boxes = await box_examples(session, project_id, body.labels)
            problems = detector_shortfalls(boxes.counts(), len(boxes.image_ids))
            if problems:
                raise ApiError(422, "not_enough_examples", "; ".join(problems),
                               {"boxes": boxes.counts(), "images": len(boxes.image_ids)})
        elif model is not None and body.multi_label is not None and body.multi_label != model.multi_label:
            kind = "multi-label" if model.multi_label else "single-label"
            raise invalid(f"model {body.name!r} is {kind}; train another name to change that")
        multi = model.multi_label if model is not None else bool(body.multi_label)
        if body.task == "classification":
            ex = await examples(session, project_id, body.labels, multi)
            problems = shortfalls(ex.counts(), len(ex.image_ids), multi)
            if problems:
                raise ApiError(422, "not_enough_examples", "; ".join(problems),
                               {"examples": ex.counts()})
        if model is None:
            model = AiModel(project_id=project_id, name=body.name, task=body.task, kind="trained",
                            multi_label=multi, mapping={}, created_by=user.id, created_at=utcnow())
            session.add(model)
            await session.flush()
        params: dict[str, Any] = {"model_id": model.id, "labels": body.labels,
                                  "features": body.features, "created_by": user.id}
        job_id = await defer(session, kind=TRAIN_KIND, project_id=project_id, params=params,
                             created_by=user.id)
        await session.flush()
        job = await session.get(Job, job_id)
        assert job is not None
        out = model_out(model, await versions(session, model.id),
                        await current_labels(session, project_id), job)
        return JSONResponse({"model": out, "job": job_info(job)}, status_code=202)


async def put_mapping(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, MappingIn)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_LABELS, lock=True)
        model = await find_model(session, project_id, model_ref(request), lock=True)
        if model.kind != "builtin":
            raise invalid(f"model {model.name!r} predicts the project's own labels: no mapping")
        unknown = sorted(set(body.mapping) - imagenet_classes())
        if unknown:
            raise invalid(f"not ImageNet classes of the built-in model: {', '.join(unknown[:20])}",
                          {"classes": unknown[:100]})
        ids = await label_store.ensure_label_defs(session, project_id, set(body.mapping.values()))
        model.mapping = {c: {"label": n, "label_id": ids[n]} for c, n in body.mapping.items()}
        await session.flush()
        return JSONResponse(model_out(model, [], await current_labels(session, project_id)))


async def download(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        model = await find_model(session, project_id, model_ref(request))
        if model.kind == IMPORTED:
            raise invalid(f"model {model.name!r} was imported with its predictions and has no "
                          "weights to download")
        if model.kind != "trained":
            raise invalid("only trained models can be downloaded")
        wanted = query_int(request, "version", 0, 0, 2**31 - 1) or None
        row = await find_version(session, model, wanted)
        try:
            if model.task == "detection":
                detector = detector_of(model, row)
            else:
                head = head_of(model, row)
        except ModelError as exc:
            raise ApiError(409, "model_corrupted", str(exc)) from None
    if model.task == "detection":
        data = detector_bundle(model.name, row.version, detector, row.metrics)
    else:
        data = bundle(model.name, row.version, head, row.metrics)
    filename = f"{model.name}-v{row.version}.zip".replace('"', "")
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


routes = [
    Route("/api/v1/projects/{project_id}/models", list_models, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/models", train, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/models/{model}", get_model, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/models/{model}/mapping", put_mapping, methods=["PUT"]),
    Route("/api/v1/projects/{project_id}/models/{model}/download", download, methods=["GET"]),
]
