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
from sqlalchemy import exists, select

from server._upload_save import lock_contents
from server.ai.embeddings import EMBED_KIND, drop_retired, missing, save_vectors
from server.ai.features import FEATURE_KEYS, Extractor, ImageDecodeError, ModelError, decode_image
from server.db import transaction
from server.jobs import JobContext, task
from server.models import Image, ImageEmbedding
from server.storage import StorageUnavailable, Store, open_store, original_key

__all__ = ["BATCH", "decode_all", "embed", "embed_contents", "extractor", "read_all"]

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


async def _store(ctx: JobContext, vectors: dict[str, dict[str, np.ndarray]]) -> None:
    async with transaction(ctx.sessions) as session:
        for sha, by_key in vectors.items():
            # The upload/delete lock of this content: a vector is never stored for a content
            # whose last image was deleted meanwhile (its rows would be orphans).
            await lock_contents(session, [sha])
            if (await session.execute(select(exists().where(Image.sha256 == sha)))).scalar():
                await save_vectors(session, sha, by_key)


async def embed_contents(ctx: JobContext, todo: Sequence[tuple[str, int]], keys: Sequence[str],
                         report: Callable[[int, int], Awaitable[None]] | None = None,
                         ) -> tuple[int, list[dict[str, Any]]]:
    """Compute and store the missing ``keys`` vectors of ``todo`` (``(sha256, image id)``, as
    :func:`server.ai.embeddings.missing` lists them), a batch at a time; ``report(done, total)``
    between batches. Returns how many contents got vectors, and the images that failed. Also
    used by the train and predict jobs for the images they need (``server/ai/model_jobs.py``)."""
    store = open_store(ctx.settings)
    ext = extractor(ctx.settings.model_dir, ctx.settings.ai_threads)
    failed: list[dict[str, Any]] = []
    embedded = 0
    total = len(todo)
    for start in range(0, total, BATCH):
        batch = todo[start : start + BATCH]
        have = await _have(ctx, [sha for sha, _ in batch], keys)
        blobs = await read_all(store, [sha for sha, _ in batch])
        decoded = await ctx.run_cpu(decode_all, blobs)
        groups: dict[tuple[str, ...], list[tuple[str, np.ndarray]]] = {}
        for (sha, image_id), image in zip(batch, decoded, strict=True):
            if isinstance(image, str):
                failed.append({"image": image_id, "error": image})
                continue
            lacking = tuple(k for k in keys if k not in have[sha])
            if lacking:
                groups.setdefault(lacking, []).append((sha, image))
        vectors: dict[str, dict[str, np.ndarray]] = {}
        for lacking, items in groups.items():
            try:
                computed = await ctx.run_cpu(ext.compute, [img for _, img in items], lacking)
            except ModelError as exc:
                raise ModelError(f"image features cannot be computed: {exc}") from exc
            for i, (sha, _) in enumerate(items):
                vectors.setdefault(sha, {}).update({k: computed[k][i] for k in lacking})
        await _store(ctx, vectors)
        embedded += len(vectors)
        if report is not None:
            await report(min(start + BATCH, total), total)
    return embedded, failed


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
