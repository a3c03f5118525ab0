"""Reading a project's labels in bounded batches of images, for every exporter.

Each batch runs in its own short transaction (keyset pagination on image id), so an export of a
huge project never holds one transaction open, and memory stays at one batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server._label_store import read_labels
from server.classification import ImageLabelState
from server.db import transaction
from server.edits import row_to_dict  # the one wire form of an object row
from server.image_query import ImageFilter, apply_filter
from server.models import Image, LabelDef, LabelObjectRow

BATCH = 500


@dataclass(frozen=True)
class ExportJob:
    """What an exporter needs: where to read, which images, and the format's query options."""

    sessions: async_sessionmaker[AsyncSession]
    project_id: int
    flt: ImageFilter | None
    options: dict[str, str]


@dataclass
class ImageRecord:
    id: int
    name: str
    width: int
    height: int
    labels: list[ImageLabelState] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)


_OBJ_COLS = (LabelObjectRow.image_id, LabelObjectRow.id, LabelObjectRow.type, LabelObjectRow.label,
             LabelObjectRow.geometry, LabelObjectRow.keypoints, LabelObjectRow.attributes,
             LabelObjectRow.rpy, LabelObjectRow.occluded, LabelObjectRow.z)


async def _objects(session: AsyncSession, ids: list[int], with_objects: bool) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not with_objects or not ids:
        return out
    conn = await session.connection()  # Core rows: no ORM overhead on the hot export path
    rows = await conn.execute(select(*_OBJ_COLS).where(LabelObjectRow.image_id.in_(ids))
                                 .order_by(LabelObjectRow.image_id, LabelObjectRow.z, LabelObjectRow.id))
    for row in rows:
        out[row.image_id].append(row_to_dict(row))
    return out


async def iter_images(
    sessions: async_sessionmaker[AsyncSession], project_id: int, flt: ImageFilter | None,
    *, labels: bool = True, objects: bool = True, batch: int = BATCH,
) -> AsyncIterator[list[ImageRecord]]:
    """Batches of images (ordered by id) matching ``flt`` with their labels and objects."""
    last = 0
    while True:
        async with transaction(sessions) as session:
            stmt: Any = select(Image.id, Image.name, Image.width, Image.height).where(
                Image.project_id == project_id, Image.id > last)
            if flt is not None:
                stmt = apply_filter(stmt, flt)
            rows = (await session.execute(stmt.order_by(Image.id).limit(batch))).all()
            if not rows:
                return
            ids = [r.id for r in rows]
            states = await read_labels(session, ids) if labels else {}
            objs = await _objects(session, ids, objects)
        yield [ImageRecord(r.id, r.name, r.width, r.height, states.get(r.id, []), objs[r.id]) for r in rows]
        last = ids[-1]


async def label_defs(sessions: async_sessionmaker[AsyncSession], project_id: int) -> list[dict[str, Any]]:
    async with transaction(sessions) as session:
        rows = await session.execute(select(LabelDef.name, LabelDef.color, LabelDef.shortcut)
                                     .where(LabelDef.project_id == project_id).order_by(LabelDef.name))
        return [{"name": n, "color": c, "shortcut": s} for n, c, s in rows]


async def object_labels(sessions: async_sessionmaker[AsyncSession], project_id: int) -> list[str]:
    """Distinct object label names of the project, sorted (stable category/class ids)."""
    async with transaction(sessions) as session:
        rows = await session.execute(select(LabelObjectRow.label).where(
            LabelObjectRow.project_id == project_id).distinct())
        return sorted({r for (r,) in rows})
