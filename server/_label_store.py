"""Reading and writing classification labels (the I/O side of ``server/classification.py``).

Shared by the REST routes (``server/labels.py``, imports in ``server/formats/``) and the hub.
Everything runs in the caller's transaction; nothing here commits.

The order of an image's labels is the order they were added: rows are read ordered by
``(created_at, label_id)``, and the writers rewrite ``created_at`` where needed so the stored
order always equals the order of the state list they were given (exact undo of a removal in the
middle puts the label back in its old place).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.classification import ImageLabelState
from server.models import ImageLabel, LabelDef, utcnow

#: Colors handed to labels created implicitly (by applying an unknown name); cycles.
PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
    "#808000", "#ffd8b1", "#000075", "#808080",
)
_CHUNK = 500  # ids per IN (...) list: far below SQLite's bound-parameter limit
_TICK = timedelta(microseconds=1)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def label_ids(session: AsyncSession, project_id: int, names: Iterable[str]) -> dict[str, int]:
    """Ids of the project's labels with these names (unknown names are absent)."""
    wanted = sorted(set(names))
    out: dict[str, int] = {}
    for chunk in _chunks(wanted):
        rows = await session.execute(
            select(LabelDef.name, LabelDef.id).where(LabelDef.project_id == project_id,
                                                     LabelDef.name.in_(chunk))
        )
        out.update({name: id_ for name, id_ in rows})
    return out


async def ensure_label_defs(session: AsyncSession, project_id: int, names: Iterable[str]) -> dict[str, int]:
    """Ids for these label names, creating the missing ``LabelDef`` rows with palette colors.

    Safe against a concurrent creator of the same name (insert ... on conflict do nothing).
    """
    wanted = set(names)
    known = await label_ids(session, project_id, wanted)
    missing = sorted(wanted - set(known))
    if not missing:
        return known
    count = (await session.execute(
        select(func.count()).select_from(LabelDef).where(LabelDef.project_id == project_id)
    )).scalar_one()
    now = utcnow()
    rows = [{"project_id": project_id, "name": n, "color": PALETTE[(count + i) % len(PALETTE)],
             "created_at": now} for i, n in enumerate(missing)]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LabelDef)
    stmt = ins.on_conflict_do_nothing(index_elements=["project_id", "name"])
    for chunk in _chunks(rows):
        await session.execute(stmt, list(chunk))
    known.update(await label_ids(session, project_id, missing))
    return known


async def read_labels(session: AsyncSession, image_ids: Sequence[int]) -> dict[int, list[ImageLabelState]]:
    """The classification state of each image (images without labels map to ``[]``)."""
    out: dict[int, list[ImageLabelState]] = {i: [] for i in image_ids}
    for chunk in _chunks(list(out)):
        rows = await session.execute(
            select(ImageLabel.image_id, LabelDef.name, ImageLabel.is_default, ImageLabel.source,
                   ImageLabel.created_by)
            .join(LabelDef, LabelDef.id == ImageLabel.label_id)
            .where(ImageLabel.image_id.in_(chunk))
            .order_by(ImageLabel.image_id, ImageLabel.created_at, ImageLabel.label_id)
        )
        for image_id, name, is_default, source, user_id in rows:
            out[image_id].append(ImageLabelState(name, is_default, source, user_id))
    return out


async def read_image_labels(session: AsyncSession, image_id: int) -> list[ImageLabelState]:
    """One image's classification state, in the order the labels were added."""
    return (await read_labels(session, [image_id]))[image_id]


async def write_image_labels(
    session: AsyncSession, project_id: int, image_id: int, new_state: Sequence[ImageLabelState]
) -> None:
    """Make the image's stored labels equal ``new_state`` (order included), in the caller's
    transaction. Unknown label names get a ``LabelDef`` (palette color). Does not touch the op
    log: the caller appends the op (``server/edits.py`` for the hub, ``server/_oplog.py`` for
    REST/import batches)."""
    await write_labels(session, project_id, {image_id: new_state})


async def write_labels(
    session: AsyncSession, project_id: int, states: Mapping[int, Sequence[ImageLabelState]]
) -> None:
    """Bulk form of :func:`write_image_labels`: ``{image_id: new_state}``, diffed per row."""
    if not states:
        return
    ids = await ensure_label_defs(session, project_id, {s.label for st in states.values() for s in st})
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    deletes: list[tuple[int, int]] = []
    for chunk in _chunks(list(states)):
        current: dict[int, dict[int, tuple[bool, str, int | None, datetime]]] = {i: {} for i in chunk}
        rows = await session.execute(
            select(ImageLabel.image_id, ImageLabel.label_id, ImageLabel.is_default,
                   ImageLabel.source, ImageLabel.created_by, ImageLabel.created_at)
            .where(ImageLabel.image_id.in_(chunk))
        )
        for image_id, label_id, is_default, source, created_by, created_at in rows:
            current[image_id][label_id] = (is_default, source, created_by, created_at)
        for image_id in chunk:
            _diff(image_id, current[image_id], states[image_id], ids, now, inserts, updates, deletes)
    conn = await session.connection()
    table: Any = ImageLabel.__table__
    by_label: dict[int, list[int]] = {}
    for image_id, label_id in deletes:
        by_label.setdefault(label_id, []).append(image_id)
    for label_id, image_ids in by_label.items():
        for del_chunk in _chunks(image_ids):
            await conn.execute(delete(table).where(table.c.label_id == label_id,
                                                   table.c.image_id.in_(del_chunk)))
    if updates:
        await session.execute(update(ImageLabel), updates)
    if inserts:
        await conn.execute(insert(table), inserts)


def _diff(
    image_id: int,
    have: dict[int, tuple[bool, str, int | None, datetime]],
    want: Sequence[ImageLabelState],
    ids: Mapping[str, int],
    now: datetime,
    inserts: list[dict[str, Any]],
    updates: list[dict[str, Any]],
    deletes: list[tuple[int, int]],
) -> None:
    wanted_ids = [ids[s.label] for s in want]
    deletes.extend((image_id, lid) for lid in have if lid not in set(wanted_ids))
    previous: datetime | None = None
    for state, lid in zip(want, wanted_ids, strict=True):
        old = have.get(lid)
        stamp = old[3] if old is not None else now
        if previous is not None and stamp <= previous:
            stamp = previous + _TICK  # keep the stored order equal to the list order
        previous = stamp
        row = {"image_id": image_id, "label_id": lid, "is_default": state.is_default,
               "source": state.source, "created_by": state.user_id, "created_at": stamp}
        if old is None:
            inserts.append(row)
        elif old != (state.is_default, state.source, state.user_id, stamp):
            updates.append(row)
