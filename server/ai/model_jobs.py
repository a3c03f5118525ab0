"""The ``train`` and ``predict`` jobs (run by workers, never on the server's loop).

``train`` (params ``{"model_id", "labels"?, "features"?}``): reads the images people labeled,
computes the feature vectors they lack (the embed job's machinery), fits and measures a head
(``server/ai/training.py``) in a worker thread and stores it as the model's next version.
Resumable: a run that finds the version it already stored returns it.

``predict`` (params ``{"model_id", "version", "images": [...]}``): computes missing vectors,
scores the images a batch at a time and stores one prediction per image (pending), skipping
images already predicted by that version, so a run again after a worker died goes on where it
stopped. The built-in model runs the network itself (its class scores are not stored vectors).
A corrupted stored model fails the job with a message naming the model and what is wrong.
Detectors (``task: detection``) train and predict in server/ai/detector_jobs.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from server.ai._pipeline import pipelined
from server.ai.detection import Detector
from server.ai.detector_jobs import detector_of, predict_detections, train_detection
from server.ai.embeddings import missing
from server.ai.features import FEATURE_KEYS, Extractor, ModelError
from server.ai.heads import LinearHead, assemble
from server.ai.mapping import top_classes
from server.ai.model_store import (
    PREDICT_KIND,
    TRAIN_KIND,
    examples,
    find_version,
    head_of,
    read_features,
    train_and_store,
    trained_result,
)
from server.ai.tasks import BATCH, decode_all, embed_contents, extractor, read_all
from server.ai.training import train
from server.db import transaction
from server.jobs import JobContext, task
from server.models import AiModel, AiModelVersion, Image, Prediction, utcnow
from server.storage import open_store

__all__ = ["predict", "train_model"]

KEEP = 5  # label scores kept per prediction (plus every label above the threshold)
SCORE_CHUNK = 500  # images scored and stored per transaction (their vectors read at once)


async def _model(ctx: JobContext) -> AiModel:
    async with ctx.sessions() as session:
        model = await session.get(AiModel, int(ctx.params["model_id"]))
    if model is None or model.project_id != ctx.project_id:
        raise ValueError("the model no longer exists")
    return model


def _features(ctx: JobContext) -> tuple[str, ...]:
    asked = ctx.params.get("features") or list(FEATURE_KEYS)
    unknown = [k for k in asked if k not in FEATURE_KEYS]
    if unknown:
        raise ValueError(f"unknown feature keys {unknown}; known: {list(FEATURE_KEYS)}")
    return tuple(k for k in FEATURE_KEYS if k in asked)


@task(TRAIN_KIND)
async def train_model(ctx: JobContext) -> dict[str, Any]:
    model = await _model(ctx)
    assert ctx.project_id is not None
    async with ctx.sessions() as session:
        done = (await session.execute(select(
            AiModelVersion.version, AiModelVersion.metrics, AiModelVersion.images).where(
            AiModelVersion.model_id == model.id, AiModelVersion.job_id == ctx.job_id))).first()
        if done is not None:
            return trained_result(model, done.version, done.metrics, done.images)
    if model.task == "detection":
        return await train_detection(ctx, model)
    async with ctx.sessions() as session:
        ex = await examples(session, ctx.project_id, ctx.params.get("labels"), model.multi_label)
    keys = _features(ctx)
    async with ctx.sessions() as session:
        todo = await missing(session, ctx.project_id, keys, ex.image_ids)
    total = len(todo) + 1
    await ctx.progress(0, total)
    _, failed = await embed_contents(ctx, todo, keys, lambda d, _t: ctx.progress(d, total))
    async with ctx.sessions() as session:
        vectors = await read_features(session, ex.shas, keys)
    usable = [i for i, sha in enumerate(ex.shas) if all(k in vectors.get(sha, {}) for k in keys)]
    stacked = {k: np.stack([vectors[ex.shas[i]][k] for i in usable]) if usable else
               np.zeros((0, 1), np.float32) for k in keys}
    names = [n for _, n in ex.labels]
    return await train_and_store(ctx, model, ex.labels, train,
                                 (stacked, ex.targets[usable], names, model.multi_label),
                                 len(usable), failed, total)


def _trained_items(head: LinearHead, vectors: dict[str, np.ndarray]) -> list[list[dict[str, Any]]]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # a small product: more BLAS threads only spin on shared cores
        scores = head.scores(assemble(vectors, head.features))
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        keep = [j for r, j in enumerate(order) if r < KEEP or row[j] >= head.threshold]
        out.append([{"label": head.labels[j], "score": round(float(row[j]), 4)} for j in keep])
    return out


def _classified(ext: Extractor, blobs: Sequence[bytes | str]) -> list[list[dict[str, Any]] | str]:
    """Each content's top ImageNet classes, or why it cannot be read (worker thread: decoding
    and the network in one hop; the network loads on first use, in this thread)."""
    decoded = decode_all(blobs)
    good = [img for img in decoded if not isinstance(img, str)]
    probs = iter(ext.network.classify(good) if good else [])
    names = ext.network.class_names if good else ()
    return [img if isinstance(img, str) else top_classes(next(probs), names) for img in decoded]


async def _todo(ctx: JobContext, model: AiModel, version: int) -> list[tuple[int, str]]:
    """The asked images of the project not yet predicted by this version, as (id, sha256)."""
    ids = sorted({int(i) for i in ctx.params.get("images", [])})
    out: list[tuple[int, str]] = []
    async with ctx.sessions() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            done = set((await session.execute(select(Prediction.image_id).where(
                Prediction.model_id == model.id, Prediction.version == version,
                Prediction.image_id.in_(chunk)))).scalars())
            out += [(int(i), s) for i, s in await session.execute(
                select(Image.id, Image.sha256).where(
                    Image.project_id == ctx.project_id, Image.id.in_(chunk)).order_by(Image.id))
                    if i not in done]
    return out


async def _save(ctx: JobContext, model: AiModel, version: int,
                items: Sequence[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]]) -> None:
    """Store one pending prediction per ``(image id, labels, objects)``."""
    if not items:
        return
    now = utcnow()
    async with transaction(ctx.sessions) as session:
        existing = set((await session.execute(select(Image.id).where(
            Image.id.in_([i for i, _, _ in items])))).scalars())  # deleted meanwhile: skipped
        done = set((await session.execute(select(Prediction.image_id).where(
            Prediction.model_id == model.id, Prediction.version == version,
            Prediction.image_id.in_([i for i, _, _ in items])))).scalars())
        session.add_all(Prediction(
            project_id=model.project_id, image_id=i, model_id=model.id, version=version,
            labels=labels, objects=objects, status="pending", job_id=ctx.job_id, created_at=now,
            updated_at=now) for i, labels, objects in items if i in existing and i not in done)


@task(PREDICT_KIND)
async def predict(ctx: JobContext) -> dict[str, Any]:
    model = await _model(ctx)
    head: LinearHead | None = None
    detector: Detector | None = None
    version = 0
    if model.kind == "trained":
        async with ctx.sessions() as session:
            row = await find_version(session, model, int(ctx.params["version"]))
            # ModelError when corrupted: the job fails saying so
            if model.task == "detection":
                detector = detector_of(model, row)
            else:
                head = head_of(model, row)
            version = row.version
    todo = await _todo(ctx, model, version)
    if detector is not None:
        async def save(items: Sequence[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]]
                       ) -> None:
            await _save(ctx, model, version, items)

        found, lost = await predict_detections(ctx, detector, todo, save)
        return {"model": model.id, "version": version, "predicted": found, "failed": lost}
    failed: list[dict[str, Any]] = []
    predicted = 0
    if head is None:  # the built-in model: the network's own class scores, a batch at a time
        store = open_store(ctx.settings)
        net = extractor(ctx.settings.model_dir, ctx.settings.ai_threads)
        total = len(todo)
        await ctx.progress(0, total)

        async def prepare(batch: Sequence[tuple[int, str]]) -> list[list[dict[str, Any]] | str]:
            blobs = await read_all(store, [s for _, s in batch])
            try:
                return await ctx.run_cpu(_classified, net, blobs)
            except ModelError as exc:
                raise ModelError(f"the built-in model cannot run: {exc}") from exc

        async def finish(batch: Sequence[tuple[int, str]],
                         results: list[list[dict[str, Any]] | str]) -> None:
            nonlocal predicted
            items: list[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]] = [
                (i, r, []) for (i, _), r in zip(batch, results, strict=True)
                if not isinstance(r, str)]
            failed.extend({"image": i, "error": r} for (i, _), r in zip(batch, results, strict=True)
                          if isinstance(r, str))
            await _save(ctx, model, version, items)
            predicted += len(items)
            await ctx.progress(predicted + len(failed), total)

        await pipelined([todo[start : start + BATCH] for start in range(0, total, BATCH)],
                        prepare, finish)
    else:
        # The vectors the images lack first (the embed job's batches), then the scores in
        # large chunks: a few transactions per thousand images.
        async with ctx.sessions() as session:
            lacking = await missing(session, model.project_id, head.features,
                                    [i for i, _ in todo])
        total = len(lacking) + len(todo)
        await ctx.progress(0, total)
        _, failed = await embed_contents(ctx, lacking, head.features, ctx.progress)
        for start in range(0, len(todo), SCORE_CHUNK):
            chunk = todo[start : start + SCORE_CHUNK]
            async with ctx.sessions() as session:
                vectors = await read_features(session, [s for _, s in chunk], head.features)
            ready = [(i, s) for i, s in chunk if all(k in vectors.get(s, {}) for k in head.features)]
            if ready:
                stacked = {k: np.stack([vectors[s][k] for _, s in ready]) for k in head.features}
                scored = await ctx.run_cpu(_trained_items, head, stacked)
                items: list[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]] = [
                    (i, labels, []) for (i, _), labels in zip(ready, scored, strict=True)]
                await _save(ctx, model, version, items)
                predicted += len(items)
            await ctx.progress(len(lacking) + min(start + SCORE_CHUNK, len(todo)), total)
    return {"model": model.id, "version": version, "predicted": predicted, "failed": failed}

