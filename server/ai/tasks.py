"""The ``embed`` job: compute the missing feature vectors of a project's images.

Deferred after every upload (``server/images.py``, ``server/demo.py``) and on demand
(``POST /api/v1/projects/{id}/embeddings``). Resumable by construction: it starts from the
images still missing a vector, so a job run again after its worker died redoes at most one
batch. Progress is reported between batches, so a cancel stops it within one batch (about a
second) and keeps what was stored.

An image that cannot be read or decoded is listed in the result (``failed``) and the job goes
on; a network that cannot load (weights missing or corrupted) fails the job with that message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from server._upload_save import lock_contents
from server.ai._pipeline import pipelined
from server.ai.embeddings import EMBED_KIND, drop_retired, missing, save_many
from server.ai.features import FEATURE_KEYS, Extractor, ImageDecodeError, ModelError, decode_image
from server.db import transaction
from server.jobs import JobContext, task
from server.models import Image, ImageEmbedding
from server.storage import StorageUnavailable, Store, open_store, original_key

__all__ = ["BATCH", "compute_vectors", "decode_all", "embed", "embed_contents", "extractor",
           "read_all"]

#: A batch whose images the store cannot give waits this many times (1, 2, 4 ... 30 s: about
#: two minutes in all) before the job fails.
STORE_RETRIES = 8
log = logging.getLogger(__name__)

BATCH = 16  # images per network call: the measured sweet spot on 2 cores (7 ms per image)

_extractors: dict[tuple[Path, int], Extractor] = {}
_extractors_lock = threading.Lock()


def extractor(cache_dir: Path, threads: int = 1) -> Extractor:
    """One extractor per cache dir per process: the network loads once, on first use."""
    with _extractors_lock:
        key = (Path(cache_dir), threads)
        if key not in _extractors:
            _extractors[key] = Extractor(cache_dir, threads)
        return _extractors[key]


def _keys(params: dict[str, Any]) -> tuple[str, ...]:
    asked = params.get("features")
    if asked is None:
        return FEATURE_KEYS
    unknown = [k for k in asked if k not in FEATURE_KEYS] if isinstance(asked, list) else [asked]
    if unknown:
        raise ValueError(f"unknown feature keys {unknown}; known: {list(FEATURE_KEYS)}")
    return tuple(k for k in FEATURE_KEYS if k in asked)


async def read_all(store: Store, shas: Sequence[str]) -> list[bytes | str]:
    """Each content's bytes from the image store (local or S3: a worker needs no shared disk),
    or why it cannot be had. A store that does not answer fails the job (it is retried)."""

    async def one(sha: str) -> bytes | str:
        try:
            return await store.get(original_key(sha))
        except FileNotFoundError:
            return "the image file is missing"

    for attempt in range(STORE_RETRIES + 1):
        try:
            return list(await asyncio.gather(*(one(sha) for sha in shas)))
        except StorageUnavailable as exc:
            if attempt == STORE_RETRIES:
                raise RuntimeError(exc.message) from exc
            # The store is down: wait for it (the lease heartbeat goes on) rather than fail
            # the job, so the work resumes when the store returns.
            log.warning("image store unavailable, retrying: %s", exc.message)
            await asyncio.sleep(min(30.0, 2.0**attempt))
    raise AssertionError("unreachable")


def _decode(data: bytes | str) -> np.ndarray | str:
    """The image as RGB, or the reason it cannot be had."""
    if isinstance(data, str):
        return data
    try:
        return decode_image(data)
    except ImageDecodeError as exc:
        return str(exc)


def decode_all(blobs: Sequence[bytes | str]) -> list[np.ndarray | str]:
    """Each content's image as RGB, or the reason it cannot be had (CPU: run off the loop)."""
    return [_decode(data) for data in blobs]


async def _have(ctx: JobContext, shas: Sequence[str], keys: Sequence[str]) -> dict[str, set[str]]:
    async with ctx.sessions() as session:
        rows = await session.execute(select(ImageEmbedding.sha256, ImageEmbedding.feature).where(
            ImageEmbedding.sha256.in_(list(shas)), ImageEmbedding.feature.in_(list(keys))))
        out: dict[str, set[str]] = {sha: set() for sha in shas}
        for sha, key in rows:
            out[sha].add(key)
        return out


def compute_vectors(ext: Extractor, blobs: Sequence[bytes | str],
                    lacking: Sequence[tuple[str, ...]]) -> tuple[list[dict[str, np.ndarray]],
                                                                 list[str | None]]:
    """Decode each content and compute the feature keys it lacks (worker thread: one hop per
    batch). Returns per content its vectors (empty when it lacks none or failed) and why it
    failed (``None`` when it did not); images lacking the same keys share network calls."""
    vectors: list[dict[str, np.ndarray]] = [{} for _ in blobs]
    errors: list[str | None] = [None] * len(blobs)
    groups: dict[tuple[str, ...], list[tuple[int, np.ndarray]]] = {}
    for i, (data, keys) in enumerate(zip(blobs, lacking, strict=True)):
        if not keys:
            continue  # stored meanwhile: not even decoded
        image = _decode(data)
        if isinstance(image, str):
            errors[i] = image
        else:
            groups.setdefault(tuple(keys), []).append((i, image))
    for keys, items in groups.items():
        try:
            computed = ext.compute([img for _, img in items], keys)
        except ModelError as exc:
            raise ModelError(f"image features cannot be computed: {exc}") from exc
        for row, (i, _) in enumerate(items):
            vectors[i] = {k: computed[k][row] for k in keys}
    return vectors, errors


async def _store(ctx: JobContext, vectors: dict[str, dict[str, np.ndarray]]) -> None:
    """Store the vectors of several contents in one transaction, one statement each step."""
    if not vectors:
        return
    async with transaction(ctx.sessions) as session:
        # The upload/delete lock of these contents (all at once, in order): a vector is never
        # stored for a content whose last image was deleted meanwhile (its rows would be orphans).
        await lock_contents(session, list(vectors))
        held = set((await session.execute(select(Image.sha256).where(
            Image.sha256.in_(list(vectors))).distinct())).scalars())
        await save_many(session, {sha: v for sha, v in vectors.items() if sha in held})


Computed = tuple[list[dict[str, np.ndarray]], list[str | None]]


async def embed_contents(ctx: JobContext, todo: Sequence[tuple[str, int]], keys: Sequence[str],
                         report: Callable[[int, int], Awaitable[None]] | None = None,
                         ) -> tuple[int, list[dict[str, Any]]]:
    """Compute and store the missing ``keys`` vectors of ``todo`` (``(sha256, image id)``, as
    :func:`server.ai.embeddings.missing` lists them), a batch at a time, each batch computed
    while the one before is stored (server/ai/_pipeline.py); ``report(done, total)`` between
    batches. Returns how many contents got vectors, and the images that failed. Also used by
    the train and predict jobs for the images they need (``server/ai/model_jobs.py``)."""
    store = open_store(ctx.settings)
    ext = extractor(ctx.settings.model_dir, ctx.settings.ai_threads)
    failed: list[dict[str, Any]] = []
    total = len(todo)
    counts = {"embedded": 0, "done": 0}

    async def prepare(batch: Sequence[tuple[str, int]]) -> Computed:
        shas = [sha for sha, _ in batch]
        have = await _have(ctx, shas, keys)
        blobs = await read_all(store, shas)
        lacking = [tuple(k for k in keys if k not in have[sha]) for sha in shas]
        return await ctx.run_cpu(compute_vectors, ext, blobs, lacking)

    async def finish(batch: Sequence[tuple[str, int]], computed: Computed) -> None:
        vectors, errors = computed
        failed.extend({"image": image_id, "error": error}
                      for (_, image_id), error in zip(batch, errors, strict=True) if error)
        found = {sha: v for (sha, _), v in zip(batch, vectors, strict=True) if v}
        await _store(ctx, found)
        counts["embedded"] += len(found)
        counts["done"] += len(batch)
        if report is not None:
            await report(counts["done"], total)

    await pipelined([todo[start : start + BATCH] for start in range(0, total, BATCH)],
                    prepare, finish)
    return counts["embedded"], failed


@task(EMBED_KIND)
async def embed(ctx: JobContext) -> dict[str, Any]:
    """Params: ``{"features": [keys]}`` to compute only some feature keys (default: all)."""
    keys = _keys(ctx.params)
    project_id = ctx.project_id
    if project_id is None:
        raise ValueError("an embed job belongs to a project")
    async with transaction(ctx.sessions) as session:
        todo = await missing(session, project_id, keys)
        retired = await drop_retired(session, project_id, FEATURE_KEYS)
    await ctx.progress(0, len(todo))
    embedded, failed = await embed_contents(ctx, todo, keys, ctx.progress)
    return {"embedded": embedded, "failed": failed, "features": list(keys),
            "retired_vectors": retired}
