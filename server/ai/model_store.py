"""Reading and writing models, versions and predictions (the I/O side of server/ai/heads.py,
training.py and mapping.py). Everything runs in the caller's transaction; nothing commits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.ai.errors import ModelError
from server.ai.heads import LinearHead, load
from server.ai.mapping import BUILTIN_NAME, matches
from server.ai.training import TrainingError
from server.ai.vectors import decode
from server.db import transaction
from server.errors import ApiError, not_found
from server.models import (
    AiModel,
    AiModelVersion,
    Image,
    ImageEmbedding,
    ImageLabel,
    Job,
    LabelDef,
    utcnow,
)

if TYPE_CHECKING:
    from server.jobs import JobContext

__all__ = [
    "PREDICT_KIND",
    "TRAIN_KIND",
    "Examples",
    "Trained",
    "chosen_names",
    "current_labels",
    "ensure_builtin",
    "examples",
    "find_model",
    "head_of",
    "model_out",
    "read_features",
    "requested_by",
    "save_version",
    "trained_result",
    "version_out",
    "versions",
]

TRAIN_KIND = "train"
PREDICT_KIND = "predict"


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def ensure_builtin(session: AsyncSession, project_id: int) -> AiModel:
    """The project's built-in ImageNet model row (made on first use; safe when two ask at once)."""
    await session.execute(_insert(session, AiModel).values(
        project_id=project_id, name=BUILTIN_NAME, task="classification", kind="builtin",
        multi_label=False, mapping={}, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["project_id", "name"]))
    return (await session.execute(select(AiModel).where(
        AiModel.project_id == project_id, AiModel.name == BUILTIN_NAME))).scalar_one()


async def find_model(session: AsyncSession, project_id: int, ref: int | str,
                     lock: bool = False) -> AiModel:
    """A model of the project by id or name (the built-in one by its name): 404 otherwise."""
    if ref == BUILTIN_NAME:
        await ensure_builtin(session, project_id)
    stmt = select(AiModel).where(AiModel.project_id == project_id)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        stmt = stmt.where(AiModel.id == int(ref))
    else:
        stmt = stmt.where(AiModel.name == ref)
    if lock:
        stmt = stmt.with_for_update()
    model = (await session.execute(stmt)).scalar_one_or_none()
    if model is None:
        raise not_found("model")
    return model


async def current_labels(session: AsyncSession, project_id: int) -> dict[int, str]:
    """The project's label set: id -> name."""
    rows = await session.execute(select(LabelDef.id, LabelDef.name).where(
        LabelDef.project_id == project_id))
    return {int(i): n for i, n in rows}


async def versions(session: AsyncSession, model_id: int) -> list[AiModelVersion]:
    return list((await session.execute(select(AiModelVersion).where(
        AiModelVersion.model_id == model_id).order_by(AiModelVersion.version))).scalars())


async def find_version(session: AsyncSession, model: AiModel, version: int | None
                       ) -> AiModelVersion:
    """The given version of a trained model, or its latest: 404/409 when there is none."""
    stmt = select(AiModelVersion).where(AiModelVersion.model_id == model.id)
    if version is None:
        stmt = stmt.order_by(AiModelVersion.version.desc()).limit(1)
    else:
        stmt = stmt.where(AiModelVersion.version == version)
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        if version is not None:
            raise not_found("model version")
        raise ApiError(409, "not_trained", f"model {model.name!r} has no trained version yet")
    return row


def head_of(model: AiModel, row: AiModelVersion) -> LinearHead:
    """The stored head; ``ModelError`` naming the model when it is corrupted."""
    try:
        labels = [str(e["name"]) for e in row.labels]
        return load(row.head, labels, row.weights)
    except (ModelError, KeyError, TypeError) as exc:
        raise ModelError(f"model {model.name!r} version {row.version} is corrupted: {exc}") from exc


def version_out(row: AiModelVersion, current: dict[int, str]) -> dict[str, Any]:
    return {"version": row.version, "labels": [e["name"] for e in row.labels],
            "feature": "+".join(row.head.get("features", [])),
            "threshold": round(float(row.head.get("threshold", 0.0)), 4), "images": row.images,
            "metrics": row.metrics, "stale": not matches(row.labels, current),
            "job": row.job_id, "created_by": row.created_by,
            "created_at": row.created_at.isoformat()}


def model_out(model: AiModel, rows: Sequence[AiModelVersion], current: dict[int, str],
              training: Job | None = None, with_metrics: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": model.id, "name": model.name, "task": model.task,
                           "kind": model.kind, "multi_label": model.multi_label,
                           # an imported model's predictions came with it: no weights
                           "can_predict": model.kind != "imported",
                           "created_at": model.created_at.isoformat()}
    if model.kind == "builtin":
        out["mapping"] = {cls: t["label"] for cls, t in sorted(model.mapping.items())}
        out["stale_mapping"] = sorted(
            cls for cls, t in model.mapping.items()
            if not matches([{"id": t["label_id"], "name": t["label"]}], current))
        out["classes"] = 1000
    else:
        listed = [version_out(r, current) for r in rows]
        if not with_metrics:
            for v in listed:
                m = v.pop("metrics")
                v["accuracy"] = m.get("accuracy")
                if model.task == "detection":
                    v["map50"] = m.get("map50")
        out["versions"] = listed
        out["latest"] = rows[-1].version if rows else None
        out["training"] = None if training is None else {
            "job": training.id, "status": training.status}
    return out


@dataclass(frozen=True)
class Examples:
    """The images people labeled, as training sees them."""

    image_ids: list[int]
    shas: list[str]
    labels: list[tuple[int, str]]  # (label id, name), in training order
    targets: np.ndarray  # (images, labels) bool

    def counts(self) -> dict[str, int]:
        return {name: int(n) for (_, name), n in zip(self.labels, self.targets.sum(axis=0),
                                                     strict=True)}


async def examples(session: AsyncSession, project_id: int, wanted: Sequence[str] | None,
                   multi_label: bool) -> Examples:
    """Training examples: labels people set (source ``manual``; automatic ones never train).

    ``wanted``: the labels to train (default: every label with labeled images; unknown names
    are a 422). Single-label: an image's label is its default one among them, else its first;
    images with none of them are left out. Multi-label: every image with a manual label is an
    example (a negative one for each label it does not carry)."""
    rows = (await session.execute(
        select(ImageLabel.image_id, Image.sha256, LabelDef.id, LabelDef.name,
               ImageLabel.is_default)
        .join(LabelDef, LabelDef.id == ImageLabel.label_id)
        .join(Image, Image.id == ImageLabel.image_id)
        .where(LabelDef.project_id == project_id, ImageLabel.source == "manual")
        .order_by(ImageLabel.image_id, ImageLabel.created_at, ImageLabel.label_id))).all()
    ids = await current_labels(session, project_id)
    by_name = {n: i for i, n in ids.items()}
    if wanted is not None:
        names = chosen_names(by_name, wanted)
    else:
        names = sorted({r[3] for r in rows})
    column = {n: j for j, n in enumerate(names)}
    per_image: dict[int, tuple[str, list[tuple[str, bool]]]] = {}
    for image_id, sha, _, name, is_default in rows:
        per_image.setdefault(int(image_id), (sha, []))[1].append((name, bool(is_default)))
    image_ids, shas, targets = [], [], []
    for image_id, (sha, carried) in per_image.items():
        row = np.zeros(len(names), bool)
        mine = [(n, d) for n, d in carried if n in column]
        if multi_label:
            for n, _ in mine:
                row[column[n]] = True
        elif mine:
            pick = next((n for n, d in mine if d), mine[0][0])
            row[column[pick]] = True
        else:
            continue
        image_ids.append(image_id)
        shas.append(sha)
        targets.append(row)
    matrix = np.array(targets, bool).reshape(len(targets), len(names))
    return Examples(image_ids, shas, [(by_name[n], n) for n in names], matrix)


async def read_features(session: AsyncSession, shas: Sequence[str], keys: Sequence[str]
                        ) -> dict[str, dict[str, np.ndarray]]:
    """Stored vectors as float32: sha -> feature key -> vector (absent when not stored)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    unique = sorted(set(shas))
    for start in range(0, len(unique), 500):
        rows = await session.execute(
            select(ImageEmbedding.sha256, ImageEmbedding.feature, ImageEmbedding.dim,
                   ImageEmbedding.dtype, ImageEmbedding.vector)
            .where(ImageEmbedding.sha256.in_(unique[start : start + 500]),
                   ImageEmbedding.feature.in_(list(keys))))
        for sha, key, dim, dtype, blob in rows:
            try:
                out.setdefault(sha, {})[key] = decode(bytes(blob), dim, dtype)
            except ValueError:
                continue  # a malformed row counts as missing: it is computed again
    return out


async def next_version(session: AsyncSession, model_id: int) -> int:
    top = (await session.execute(select(func.max(AiModelVersion.version)).where(
        AiModelVersion.model_id == model_id))).scalar_one_or_none()
    return int(top or 0) + 1


class Trained(Protocol):
    """What training made (a classifier head or a detector): stored as a model version."""

    def describe(self) -> dict[str, Any]: ...
    def weights(self) -> bytes: ...


async def save_version(sessions: async_sessionmaker[AsyncSession], model: AiModel,
                       labels: Sequence[tuple[int, str]], trained: Trained,
                       metrics: dict[str, Any], images: int, job_id: int | None,
                       created_by: int | None) -> int:
    """Store a new version of ``model`` (numbered after the others, the model row locked so
    two trainings never take one number); returns its number."""
    async with transaction(sessions) as session:
        await session.get(AiModel, model.id, with_for_update=True)  # versions numbered in turn
        version = await next_version(session, model.id)
        session.add(AiModelVersion(
            model_id=model.id, version=version, labels=[{"id": i, "name": n} for i, n in labels],
            head=trained.describe(), weights=trained.weights(), metrics=metrics, images=images,
            job_id=job_id, created_by=model.created_by if created_by is None else created_by,
            created_at=utcnow()))
    return version


def trained_result(model: AiModel, version: int, metrics: Mapping[str, Any],
                   images: int) -> dict[str, Any]:
    """A train job's result: the same whether the run trained the version or found it stored (a
    run again after the first one's end could not be recorded)."""
    failed = metrics.get("failed_images", [])
    if model.task == "detection":
        return {"model": model.id, "version": version, "map50": metrics["map50"],
                "images": images, "boxes": metrics["boxes"], "failed": failed}
    return {"model": model.id, "version": version, "feature": metrics["feature"],
            "accuracy": metrics["accuracy"], "images": images, "failed": failed}


async def train_and_store(ctx: JobContext, model: AiModel, labels: Sequence[tuple[int, str]],
                          fit: Callable[..., tuple[Trained, dict[str, Any]]], args: tuple[Any, ...],
                          images: int, failed: list[dict[str, Any]], total: int
                          ) -> dict[str, Any]:
    """The end of every training job: ``fit(*args)`` on the worker's CPU (a classifier head or a
    detector, and its metrics), stored as ``model``'s next version with the images that could not
    be read, the job's progress at ``total``; the job's result (:func:`trained_result`)."""
    try:
        trained, metrics = await ctx.run_cpu(fit, *args)
    except TrainingError as exc:
        raise TrainingError(f"cannot train {model.name!r}: {exc}") from None
    metrics["failed_images"] = failed
    version = await save_version(ctx.sessions, model, labels, trained, metrics, images,
                                 ctx.job_id, requested_by(ctx.params))
    await ctx.progress(total, total)
    return trained_result(model, version, metrics, images)


def requested_by(params: Mapping[str, Any]) -> int | None:
    """Who asked for a training job (``created_by`` in its params), if it says."""
    value = params.get("created_by")
    return None if value is None else int(value)


def chosen_names(by_name: Mapping[str, int], wanted: Sequence[str]) -> list[str]:
    """The labels a training asked for, without repeats; 422 naming any that are not the
    project's."""
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ApiError(422, "invalid", f"not labels of this project: {', '.join(unknown[:20])}",
                       {"labels": unknown[:100]})
    return list(dict.fromkeys(wanted))
