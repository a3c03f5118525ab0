"""Imported models: predictions another tool made (Label Studio's ``predictions``), stored as
Labelhub predictions for review, under a model that has no weights.

One ``AiModel`` of kind ``imported`` per distinct ``model_version``, named ``"Label Studio:
<model_version>"`` (``"Label Studio"`` when it has none), task ``detection`` when its
predictions have boxes, else ``classification``. Its version row holds the label list the
predictions use (ids and names, so renaming or deleting one makes them stale like a trained
model's) and a threshold of 0.5; no weights: predicting with it or downloading it is a 422.
Importing the same file again reuses the version whose labels still match and replaces that
model's pending predictions of those images; reviewed ones (added, dismissed) are kept.
Everything runs in the caller's (the import's) transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server._label_store import ensure_label_defs
from server.ai.mapping import matches
from server.ai.model_store import current_labels, next_version
from server.errors import ApiError
from server.models import AiModel, AiModelVersion, Prediction, utcnow

__all__ = ["IMPORTED", "IMPORTED_THRESHOLD", "model_name", "store_predictions"]

IMPORTED = "imported"
IMPORTED_THRESHOLD = 0.5
SOURCE = "Label Studio"


def model_name(model_version: str) -> str:
    return f"{SOURCE}: {model_version}" if model_version else SOURCE


def summary(items: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, int]:
    """What an import's predictions come to (also what a dry run reports)."""
    return {"models": len({p["model_version"] for _, p in items}), "predictions": len(items),
            "objects": sum(len(p["objects"]) for _, p in items),
            "skipped_regions": sum(p["skipped"] for _, p in items)}


async def _model(session: AsyncSession, project_id: int, name: str, task: str,
                 user_id: int | None) -> AiModel:
    model = (await session.execute(select(AiModel).where(
        AiModel.project_id == project_id, AiModel.name == name).with_for_update()
    )).scalar_one_or_none()
    if model is not None and model.kind != IMPORTED:
        raise ApiError(409, "conflict", f"model {name!r} exists and was not imported; rename it "
                                        "to import these predictions")
    if model is None:
        model = AiModel(project_id=project_id, name=name, task=task, kind=IMPORTED,
                        multi_label=task == "classification", mapping={}, created_by=user_id,
                        created_at=utcnow())
        session.add(model)
        await session.flush()
    elif task == "detection" and model.task != "detection":
        model.task = "detection"
    return model


async def _version(session: AsyncSession, model: AiModel, model_version: str,
                   entries: list[dict[str, Any]], current: dict[int, str], count: int,
                   user_id: int | None) -> int:
    """A version whose label list covers ``entries`` and still matches, else a new one."""
    rows = (await session.execute(select(AiModelVersion).where(
        AiModelVersion.model_id == model.id).order_by(AiModelVersion.version.desc()))).scalars()
    wanted = {e["name"] for e in entries}
    for row in rows:
        if matches(row.labels, current) and wanted <= {e["name"] for e in row.labels}:
            return row.version
    version = await next_version(session, model.id)
    session.add(AiModelVersion(
        model_id=model.id, version=version, labels=entries,
        head={"threshold": IMPORTED_THRESHOLD, "source": SOURCE, "model_version": model_version},
        weights=b"", metrics={}, images=count, job_id=None, created_by=user_id,
        created_at=utcnow()))
    await session.flush()
    return version


async def store_predictions(session: AsyncSession, project_id: int, user_id: int | None,
                            items: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, int]:
    """Store ``(image id, prediction)`` pairs (``server/formats/_ls_predictions.py``'s
    shape) as pending predictions; returns the counts (``summary`` plus ``kept``: images
    whose prediction of that version was already reviewed)."""
    out = summary(items) | {"kept": 0}
    names = {x["label"] for _, p in items for x in [*p["labels"], *p["objects"]]}
    ids = await ensure_label_defs(session, project_id, names)
    current = await current_labels(session, project_id)
    by_version: dict[str, dict[int, dict[str, Any]]] = {}
    for image_id, p in items:
        by_version.setdefault(p["model_version"], {})[image_id] = p  # one per image and model
    now = utcnow()
    for model_version, per_image in sorted(by_version.items()):
        used = sorted({x["label"] for p in per_image.values() for x in [*p["labels"], *p["objects"]]})
        task = "detection" if any(p["objects"] for p in per_image.values()) else "classification"
        model = await _model(session, project_id, model_name(model_version), task, user_id)
        version = await _version(session, model, model_version,
                                 [{"id": ids[n], "name": n} for n in used], current,
                                 len(per_image), user_id)
        images = sorted(per_image)
        reviewed: set[int] = set()
        for start in range(0, len(images), 500):
            chunk = images[start : start + 500]
            await session.execute(delete(Prediction).where(
                Prediction.model_id == model.id, Prediction.status == "pending",
                Prediction.image_id.in_(chunk)))
            reviewed.update(i for (i,) in await session.execute(select(Prediction.image_id).where(
                Prediction.model_id == model.id, Prediction.version == version,
                Prediction.image_id.in_(chunk))))
        out["kept"] += len(reviewed)
        session.add_all(Prediction(
            project_id=project_id, image_id=i, model_id=model.id, version=version,
            labels=per_image[i]["labels"], objects=per_image[i]["objects"], status="pending",
            job_id=None, created_at=now, updated_at=now) for i in images if i not in reviewed)
    await session.flush()
    return out
