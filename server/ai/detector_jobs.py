"""The ``train`` and ``predict`` jobs for detectors (``task: detection``): the I/O around
server/ai/detector_training.py, called by server/ai/model_jobs.py.

Training reads the boxes people drew (``bbox`` objects whose source is not ``auto``: boxes added
from predictions never train, as auto labels never train a classifier), decodes the images a
batch at a time and keeps their feature maps (the network runs in the worker's threads), then
fits and measures the detector in one worker thread and stores it as the model's next version.
Prediction needs no stored vectors: the feature maps are computed from the image itself, so
every image gets them first, whatever was embedded before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ai import detector_training as dt
from server.ai._pipeline import pipelined
from server.ai.detection import Box, Detected, Detector, load_detector
from server.ai.errors import ModelError
from server.ai.features import Extractor
from server.ai.model_store import (
    chosen_names,
    current_labels,
    train_and_store,
)
from server.ai.tasks import BATCH, decode_all, extractor, read_all
from server.jobs import JobContext
from server.models import AiModel, AiModelVersion, Image, LabelObjectRow
from server.storage import open_store

__all__ = ["MAX_OBJECTS", "MAX_TRAIN_IMAGES", "BoxExamples", "box_examples", "detector_of",
           "predict_detections", "train_detection"]

MAX_TRAIN_IMAGES = 600  # the maps of this many images stay in memory (~0.35 MB each, float16)
MAX_OBJECTS = 100  # boxes kept per predicted image, best first
PREDICT_FLOOR = 0.1  # boxes scoring at least this (or the threshold, when lower) are stored:
#                      the review's threshold slider can go below the chosen threshold


@dataclass
class BoxExamples:
    """The images people boxed, as training sees them."""

    image_ids: list[int] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)
    boxes: list[list[Box]] = field(default_factory=list)
    labels: list[tuple[int, str]] = field(default_factory=list)  # (label id, name)

    def counts(self) -> dict[str, int]:
        out = {n: 0 for _, n in self.labels}
        for boxes in self.boxes:
            for b in boxes:
                out[b[0]] += 1
        return out


async def box_examples(session: AsyncSession, project_id: int, wanted: Sequence[str] | None
                       ) -> BoxExamples:
    """The boxes people drew of the ``wanted`` labels (default: every label with boxes; names
    that are not labels of the project are a 422), per image; images with none are left out."""
    rows = (await session.execute(
        select(LabelObjectRow.image_id, Image.sha256, LabelObjectRow.label,
               LabelObjectRow.geometry)
        .join(Image, Image.id == LabelObjectRow.image_id)
        .where(LabelObjectRow.project_id == project_id, LabelObjectRow.type == "bbox",
               LabelObjectRow.source != "auto", LabelObjectRow.label != "")
        .order_by(LabelObjectRow.image_id, LabelObjectRow.id))).all()
    by_name = {n: i for i, n in (await current_labels(session, project_id)).items()}
    if wanted is not None:
        names = chosen_names(by_name, wanted)
    else:
        names = sorted({r[2] for r in rows if r[2] in by_name})
    out = BoxExamples(labels=[(by_name[n], n) for n in names])
    chosen = set(names)
    per_image: dict[int, tuple[str, list[Box]]] = {}
    for image_id, sha, label, g in rows:
        if label in chosen and isinstance(g, dict):
            box = (label, float(g["x"]), float(g["y"]), float(g["w"]), float(g["h"]))
            per_image.setdefault(int(image_id), (sha, []))[1].append(box)
    picked = sorted(per_image)
    if len(picked) > MAX_TRAIN_IMAGES:  # evenly over the project's history
        picked = [picked[int(i)] for i in np.linspace(0, len(picked) - 1, MAX_TRAIN_IMAGES)]
    for image_id in picked:
        sha, boxes = per_image[image_id]
        out.image_ids.append(image_id)
        out.shas.append(sha)
        out.boxes.append(boxes)
    return out


def detector_of(model: AiModel, row: AiModelVersion) -> Detector:
    """The stored detector; ``ModelError`` naming the model when it is corrupted."""
    try:
        return load_detector(row.head, [str(e["name"]) for e in row.labels], row.weights)
    except (ModelError, KeyError, TypeError) as exc:
        raise ModelError(f"model {model.name!r} version {row.version} is corrupted: {exc}") from exc


def _maps(ext: Extractor, blobs: Sequence[bytes | str], flip: bool = dt.FLIP,
          dtype: type[np.floating[Any]] = np.float16
          ) -> list[tuple[list[dt.ViewMaps], int, int] | str]:
    """Each content's maps and size, or why it cannot be read (worker thread)."""
    decoded = decode_all(blobs)
    good = [img for img in decoded if not isinstance(img, str)]
    try:
        maps = iter(dt.image_maps(ext.network, good, flip, dtype))
    except ModelError as exc:
        raise ModelError(f"the network cannot run: {exc}") from exc
    return [img if isinstance(img, str) else (next(maps), img.shape[1], img.shape[0])
            for img in decoded]


async def train_detection(ctx: JobContext, model: AiModel) -> dict[str, Any]:
    assert ctx.project_id is not None
    async with ctx.sessions() as session:
        ex = await box_examples(session, ctx.project_id, ctx.params.get("labels"))
    store = open_store(ctx.settings)  # local or S3: a worker needs no shared disk
    ext = extractor(ctx.settings.model_dir, ctx.settings.ai_threads)
    total = len(ex.image_ids) + 1
    await ctx.progress(0, total)
    boxed: list[dt.Boxed] = []
    failed: list[dict[str, Any]] = []
    for start in range(0, len(ex.shas), BATCH):
        blobs = await read_all(store, ex.shas[start : start + BATCH])
        results = await ctx.run_cpu(_maps, ext, blobs)
        for k, r in enumerate(results, start):
            if isinstance(r, str):
                failed.append({"image": ex.image_ids[k], "error": r})
            else:
                boxed.append(dt.Boxed(r[1], r[2], r[0], ex.boxes[k]))
        await ctx.progress(min(start + BATCH, len(ex.shas)), total)
    names = [n for _, n in ex.labels]
    return await train_and_store(ctx, model, ex.labels, dt.train, (boxed, names), len(boxed),
                                 failed, total)


def _objects(found: Sequence[Detected], width: int, height: int) -> list[dict[str, Any]]:
    """Predicted boxes in the op protocol's bbox form, clipped to the image, best first."""
    out: list[dict[str, Any]] = []
    for d in sorted(found, key=lambda d: -d.score)[:MAX_OBJECTS]:
        x0, y0 = min(max(d.x, 0.0), width), min(max(d.y, 0.0), height)
        x1, y1 = min(max(d.x + d.w, 0.0), width), min(max(d.y + d.h, 0.0), height)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        out.append({"type": "bbox", "label": d.label, "score": round(d.score, 4), "geometry": {
            "x": round(x0, 2), "y": round(y0, 2), "w": round(x1 - x0, 2), "h": round(y1 - y0, 2)}})
    return out


def _detect(ext: Extractor, detector: Detector, blobs: Sequence[bytes | str]
            ) -> list[list[dict[str, Any]] | str]:
    from threadpoolctl import threadpool_limits

    floor = min(PREDICT_FLOOR, detector.threshold)
    maps = _maps(ext, blobs, flip=False, dtype=np.float32)  # used at once: no float16 casts
    with threadpool_limits(1):  # small products: more BLAS threads only spin on shared cores
        return [r if isinstance(r, str) else _objects(dt.detect_image(detector, r[0], floor),
                                                      r[1], r[2]) for r in maps]


Save = Callable[[Sequence[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]]], Awaitable[None]]


async def predict_detections(ctx: JobContext, detector: Detector, todo: Sequence[tuple[int, str]],
                             save: Save) -> tuple[int, list[dict[str, Any]]]:
    """Detect boxes in ``todo`` (``(image id, sha256)``) a batch at a time, ``save`` each
    batch's predictions; returns how many were predicted and the images that failed."""
    store = open_store(ctx.settings)
    ext = extractor(ctx.settings.model_dir, ctx.settings.ai_threads)
    failed: list[dict[str, Any]] = []
    predicted = 0
    await ctx.progress(0, len(todo))

    async def prepare(batch: Sequence[tuple[int, str]]) -> list[list[dict[str, Any]] | str]:
        blobs = await read_all(store, [s for _, s in batch])
        return await ctx.run_cpu(_detect, ext, detector, blobs)

    async def finish(batch: Sequence[tuple[int, str]],
                     results: list[list[dict[str, Any]] | str]) -> None:
        nonlocal predicted
        items: list[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]] = [
            (i, [], r) for (i, _), r in zip(batch, results, strict=True) if not isinstance(r, str)]
        failed.extend({"image": i, "error": r} for (i, _), r in zip(batch, results, strict=True)
                      if isinstance(r, str))
        await save(items)
        predicted += len(items)
        await ctx.progress(predicted + len(failed), len(todo))

    # Each batch computed while the one before is stored (server/ai/_pipeline.py).
    await pipelined([todo[start : start + BATCH] for start in range(0, len(todo), BATCH)],
                    prepare, finish)
    return predicted, failed
