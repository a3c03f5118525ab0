"""A project's vectors in memory: loaded from the database, cached per process, checked each use.

The database stays the truth. Each use asks two cheap questions — how many images the project
has and its largest image id (an upload or a delete changes one of them), and where its latest
embed job stands (id, status, progress) — and rebuilds the :class:`Snapshot` when the answer
differs from the cached one's. So several server processes agree, a new vector shows up at the
next request after the embed job reports progress, and nothing is invalidated by hand.
Decoding the vectors runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.ai.embeddings import EMBED_KIND
from server.ai.ranking import Examples, Snapshot, pick_view
from server.ai.vectors import View, quantize_stored
from server.models import Image, ImageEmbedding, ImageLabel, Job, LabelDef

__all__ = ["EMBED_KIND", "clear", "examples", "latest_embed_job", "manual_labels", "snapshot",
           "view_for"]

MAX_CACHED_BYTES = 1 << 30  # snapshots kept per process (100,000 images: 0.6 GB, both features)

# Keys start with the database's URL: one process may serve several databases (tests do).
_cache: OrderedDict[tuple[str, int, tuple[str, ...]], tuple[tuple[Any, ...], Snapshot]] = OrderedDict()
_lock = threading.Lock()


#: The view chosen for a project: ``(project, feature keys) -> (examples counted, view, scores)``.
_views: dict[tuple[str, int, tuple[str, ...]], tuple[int, View, dict[str, float]]] = {}
REFRESH = 0.1  # choose again once the number of labeled examples moved by this share
#: The examples last built per project: ``(db, project) -> (stamp, snapshot, examples)``.
_examples: dict[tuple[str, int], tuple[tuple[int, int], Snapshot, Examples]] = {}


def clear() -> None:
    with _lock:
        _cache.clear()
        _views.clear()
        _examples.clear()


def _bytes(snap: Snapshot) -> int:
    return sum(m.nbytes for m in snap.matrices.values())


def _database(session: AsyncSession) -> str:
    bind = session.bind
    engine = bind if isinstance(bind, AsyncEngine) else getattr(bind, "engine", None)
    return str(engine.url) if engine is not None else ""


async def latest_embed_job(session: AsyncSession, project_id: int) -> Job | None:
    return (await session.execute(
        select(Job).where(Job.project_id == project_id, Job.kind == EMBED_KIND)
        .order_by(Job.id.desc()).limit(1))).scalar_one_or_none()


async def _version(session: AsyncSession, project_id: int) -> tuple[Any, ...]:
    """What the snapshot depends on, read in one cheap round trip: the project's newest image
    (id and content: an upload changes it, and so does SQLite handing a deleted newest id to a
    new image) and its latest embed job's state (vectors arrive as it reports progress).

    Deletions do not count: a deleted image left in a snapshot is harmless, because every
    answer is checked against the database (``server/ai/similarity.py`` reads names and labels
    of the images it returns, suggestions take their examples and images from the database).
    A count of the project's images would notice them, but costs a scan (7 ms at 100,000)."""
    newest = (select(Image.id, Image.sha256).where(Image.project_id == project_id)
              .order_by(Image.id.desc()).limit(1).subquery())
    job = (select(Job.id, Job.status, Job.progress_done)
           .where(Job.project_id == project_id, Job.kind == EMBED_KIND)
           .order_by(Job.id.desc()).limit(1).subquery())
    row = (await session.execute(
        select(newest, job).select_from(newest).outerjoin(job, literal(True)))).first()
    return tuple(row) if row is not None else ()


def _build(rows: Sequence[Any], keys: tuple[str, ...]) -> Snapshot:
    by_key: dict[str, list[tuple[int, bytes]]] = {k: [] for k in keys}
    dims: dict[str, int] = {}
    for image_id, key, dim, dtype, blob in rows:
        # One dimension per key; a row of another size or type (a bug, a half-migrated
        # store) is left out rather than breaking the whole project.
        if dims.setdefault(key, dim) != dim or len(blob) != dim * np.dtype(dtype).itemsize:
            continue
        by_key[key].append((int(image_id), bytes(blob)))
    ids = np.unique(np.array([i for items in by_key.values() for i, _ in items], np.int64))
    matrices: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for key in keys:
        dim = dims.get(key, 0)
        matrix = np.zeros((ids.size, dim), np.int16)
        mask = np.zeros(ids.size, bool)
        items = by_key[key]
        if items:
            rows_at = np.searchsorted(ids, np.array([i for i, _ in items], np.int64))
            stored = np.frombuffer(b"".join(b for _, b in items), "<u2").reshape(-1, dim)
            matrix[rows_at] = quantize_stored(stored)
            mask[rows_at] = True
        matrices[key], present[key] = matrix, mask
    return Snapshot(ids=ids, matrices=matrices, present=present, keys=keys)


async def snapshot(session: AsyncSession, project_id: int, keys: Sequence[str]) -> Snapshot:
    """The project's vectors for these feature keys (cached while the version holds)."""
    wanted = tuple(keys)
    key = (_database(session), project_id, wanted)
    version = await _version(session, project_id)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == version:
            _cache.move_to_end(key)
            return hit[1]
    rows = (await session.execute(
        select(Image.id, ImageEmbedding.feature, ImageEmbedding.dim, ImageEmbedding.dtype,
               ImageEmbedding.vector)
        .join(ImageEmbedding, ImageEmbedding.sha256 == Image.sha256)
        .where(Image.project_id == project_id, ImageEmbedding.feature.in_(wanted)))).all()
    snap = await asyncio.to_thread(_build, rows, wanted)
    with _lock:
        _cache[key] = (version, snap)
        _cache.move_to_end(key)
        # The least recently used go first; the one just built always stays.
        while len(_cache) > 1 and sum(_bytes(s) for _, s in _cache.values()) > MAX_CACHED_BYTES:
            _cache.popitem(last=False)
    return snap


async def manual_labels(session: AsyncSession, project_id: int) -> dict[int, list[str]]:
    """Classification labels people set (source ``manual``), per image id. Automatic ones do
    not count: suggestions learn from people, not from earlier suggestions."""
    rows = await session.execute(
        select(ImageLabel.image_id, LabelDef.name)
        .join(LabelDef, LabelDef.id == ImageLabel.label_id)
        .where(LabelDef.project_id == project_id, ImageLabel.source == "manual")
        .order_by(ImageLabel.image_id, ImageLabel.created_at))
    out: dict[int, list[str]] = {}
    for image_id, name in rows:
        out.setdefault(int(image_id), []).append(name)
    return out


async def examples(session: AsyncSession, project_id: int, snap: Snapshot,
                   labels_seq: int) -> Examples:
    """The labeled examples over this snapshot, with their float32 vectors computed once.

    ``labels_seq`` is the project's op-log seq: every label change made through the op log
    moves it, so while it and the snapshot stay the same the labels are not even read. (Labels
    given with an upload of a new image come with a new newest image, hence a new snapshot.)"""
    key = (_database(session), project_id)
    with _lock:
        kept = _examples.get(key)
    if kept is not None and kept[1] is snap and kept[0][0] == labels_seq:
        return kept[2]
    labeled = await manual_labels(session, project_id)
    digest = hash(tuple((i, tuple(n)) for i, n in labeled.items()))
    if kept is not None and kept[1] is snap and kept[0][1] == digest:
        ex = kept[2]  # other ops moved the seq; the labels are the same
    else:
        ex = await asyncio.to_thread(Examples.of, snap, labeled)
    with _lock:
        _examples[key] = ((labels_seq, digest), snap, ex)
    return ex


async def view_for(session: AsyncSession, project_id: int, snap: Snapshot,
                   ex: Examples) -> tuple[View, dict[str, float]]:
    """The view (feature) to compare by, chosen by leave-one-out accuracy on the labeled
    examples; the choice is kept until their number moves by 10 % (it costs up to ~0.1 s)."""
    key = (_database(session), project_id, tuple(ex.keys))
    m = int(ex.rows.size)
    with _lock:
        kept = _views.get(key)
    if kept is not None and (kept[0] == m or abs(m - kept[0]) <= REFRESH * kept[0]):
        return kept[1], kept[2]
    view, scores = await asyncio.to_thread(pick_view, snap, ex)
    with _lock:
        _views[key] = (m, view, scores)
    return view, scores
