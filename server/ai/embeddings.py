"""The embeddings store: one float16 vector per (image content hash, feature key).

Rows are keyed by content, not by image, so the same picture uploaded to two projects is
embedded once; a row is deleted when the last image with that content goes
(:func:`forget_contents`, called from image deletion under the same per-content lock uploads
take). A feature key names a feature *and its version* (``server.ai.features.FEATURE_KEYS``):
bumping it makes every image "missing" that key, so the next embed job recomputes it, and the
embed job drops the rows of keys no longer in use (:func:`drop_retired`).

Everything runs in the caller's transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.ai.vectors import STORED_DTYPE, encode
from server.jobs import defer
from server.models import Image, ImageEmbedding, utcnow

__all__ = [
    "drop_retired",
    "forget_contents",
    "forget_project",
    "missing",
    "missing_count",
    "read_vectors",
    "request_embedding",
    "save_many",
    "save_vectors",
]



def _lacks_any(keys: Sequence[str]) -> Any:
    have = (select(func.count()).select_from(ImageEmbedding)
            .where(ImageEmbedding.sha256 == Image.sha256, ImageEmbedding.feature.in_(keys))
            .scalar_subquery())
    return have < len(keys)


async def missing(session: AsyncSession, project_id: int, keys: Sequence[str],
                  image_ids: Sequence[int] | None = None) -> list[tuple[str, int]]:
    """``(sha256, image id)`` of the project's images (or of these among them) lacking a vector
    for any of ``keys``, oldest image first (one entry per content)."""
    if image_ids is not None:
        found: dict[str, int] = {}
        ids = sorted(set(image_ids))
        for start in range(0, len(ids), 500):
            for sha, image_id in await session.execute(
                    select(Image.sha256, Image.id).where(
                        Image.project_id == project_id, Image.id.in_(ids[start : start + 500]),
                        _lacks_any(keys))):
                found[sha] = min(found.get(sha, image_id), image_id)
        return sorted(found.items(), key=lambda item: item[1])
    rows = await session.execute(
        select(Image.sha256, func.min(Image.id))
        .where(Image.project_id == project_id, _lacks_any(keys))
        .group_by(Image.sha256).order_by(func.min(Image.id)))
    return [(sha, int(image_id)) for sha, image_id in rows]


async def missing_count(session: AsyncSession, project_id: int, keys: Sequence[str]) -> int:
    return int((await session.execute(
        select(func.count()).select_from(Image)
        .where(Image.project_id == project_id, _lacks_any(keys)))).scalar_one())


async def save_vectors(session: AsyncSession, sha256: str, vectors: Mapping[str, np.ndarray]) -> None:
    """Store (or replace) the vectors of one content, as float16."""
    await save_many(session, {sha256: vectors})


async def save_many(session: AsyncSession,
                    vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Store (or replace) the vectors of several contents (sha256 -> feature key -> vector),
    as float16, in one statement."""
    now = utcnow()
    rows = [{"sha256": sha, "feature": key, "dim": int(vec.shape[0]), "dtype": STORED_DTYPE,
             "vector": encode(vec), "created_at": now}
            for sha, by_key in vectors.items() for key, vec in by_key.items()]
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ImageEmbedding)
    stmt = ins.on_conflict_do_update(
        index_elements=["sha256", "feature"],
        set_={"dim": ins.excluded.dim, "dtype": ins.excluded.dtype,
              "vector": ins.excluded.vector, "created_at": ins.excluded.created_at})
    await session.execute(stmt, rows)


async def read_vectors(session: AsyncSession, sha256: str) -> dict[str, tuple[int, str, bytes]]:
    """The stored rows of one content: feature key -> ``(dim, dtype, bytes)``."""
    rows = await session.execute(
        select(ImageEmbedding.feature, ImageEmbedding.dim, ImageEmbedding.dtype,
               ImageEmbedding.vector).where(ImageEmbedding.sha256 == sha256))
    return {key: (dim, dtype, bytes(vector)) for key, dim, dtype, vector in rows}


async def forget_contents(session: AsyncSession, shas: Collection[str]) -> None:
    """Delete the vectors of contents no image holds any more (call under their content locks,
    after the image rows are gone)."""
    if shas:
        await session.execute(delete(ImageEmbedding).where(
            ImageEmbedding.sha256.in_(sorted(shas)),
            ImageEmbedding.sha256.not_in(select(Image.sha256).where(Image.sha256.in_(sorted(shas))))))


async def forget_project(session: AsyncSession, project_id: int) -> None:
    """Before a project is deleted: drop the vectors of contents no other project holds (one
    statement; both IN lists are hashed, not scanned per row)."""
    mine = select(Image.sha256).where(Image.project_id == project_id)
    others = select(Image.sha256).where(Image.project_id != project_id)
    await session.execute(delete(ImageEmbedding).where(
        ImageEmbedding.sha256.in_(mine), ImageEmbedding.sha256.not_in(others)))


async def drop_retired(session: AsyncSession, project_id: int, keys: Iterable[str]) -> int:
    """Delete the project's vectors stored under feature keys not in ``keys`` (an older
    version of a feature); returns how many rows went."""
    shas = select(Image.sha256).where(Image.project_id == project_id).scalar_subquery()
    result: Any = await session.execute(delete(ImageEmbedding).where(
        ImageEmbedding.feature.not_in(list(keys)), ImageEmbedding.sha256.in_(shas)))
    return int(result.rowcount or 0)


EMBED_KIND = "embed"


async def request_embedding(session: AsyncSession, project_id: int, user_id: int | None) -> int:
    """Defer an embed job for the project in the caller's transaction (an equal queued or
    running one is reused); workers hear of it after the commit."""
    return await defer(session, kind=EMBED_KIND, project_id=project_id, params={},
                       created_by=user_id, dedupe=True)
