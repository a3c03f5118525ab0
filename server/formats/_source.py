"""Reading a project's labels in bounded batches of images, for every exporter.

An export reads one snapshot of the project (:func:`open_snapshot`): one read-only transaction
held for the whole export — ``REPEATABLE READ`` on PostgreSQL, a deferred (lock-free) read
transaction in SQLite's WAL mode — so edits committed while it runs never half-appear, and the
export states the op-log ``seq`` it reflects (the project's seq read first in that snapshot;
seqs are handed out under the project row's lock, so every op up to it is in, none after).
Writers are not blocked meanwhile. Batches are read by keyset pagination on image id, and
memory stays at two batches (the one being converted and the next, read ahead meanwhile).
Without a snapshot (``sessions`` a plain session factory) each batch is its own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server._label_store import read_labels
from server._object_store import object_dict  # the one wire form of an object row
from server.classification import ImageLabelState
from server.db import READ_SNAPSHOT, transaction
from server.image_query import ImageFilter, apply_filter
from server.models import Image, LabelDef, LabelObjectRow, Project
from server.storage import Store
from server.strict_json import server_loads

BATCH = 500


class Snapshot:
    """One read-only transaction an export reads everything from; ``seq`` is the op-log
    position it reflects. Reads take turns (one connection): the read-ahead and the
    exporter's own queries never overlap."""

    def __init__(self, session: AsyncSession, seq: int) -> None:
        self.session, self.seq = session, seq
        self._turn = asyncio.Lock()
        #: Told how many images each batch read (a job's progress).
        self.on_batch: Callable[[int], Awaitable[None]] | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._turn:
            yield self.session

    async def close(self) -> None:
        await self.session.close()  # rolls the read-only transaction back


Sessions = async_sessionmaker[AsyncSession] | Snapshot


async def open_snapshot(sessions: async_sessionmaker[AsyncSession], project_id: int) -> Snapshot:
    """A snapshot of the project for an export (close it when the export ends)."""
    engine: Any = sessions.kw["bind"]
    options: dict[str, Any] = {READ_SNAPSHOT: True}
    if engine.dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    session = AsyncSession(bind=engine.execution_options(**options), expire_on_commit=False)
    try:
        await session.begin()
        seq = (await session.execute(select(Project.seq).where(Project.id == project_id))).scalar_one_or_none()
    except BaseException:
        await session.close()
        raise
    return Snapshot(session, int(seq or 0))


@asynccontextmanager
async def reading(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    """A session to read with: the snapshot's, or a short transaction of its own."""
    if isinstance(sessions, Snapshot):
        async with sessions.read() as session:
            yield session
    else:
        async with transaction(sessions) as session:
            yield session


@dataclass(frozen=True)
class ExportJob:
    """What an exporter needs: where to read, which images, and the format's query options."""

    sessions: Sessions
    project_id: int
    flt: ImageFilter | None
    options: dict[str, str]
    #: The image store when the export includes the image files (``?images=1``).
    images: Store | None = None

    @property
    def seq(self) -> int | None:
        """The op-log position the export reflects (None without a snapshot)."""
        return self.sessions.seq if isinstance(self.sessions, Snapshot) else None


@dataclass
class ImageRecord:
    id: int
    name: str
    width: int
    height: int
    labels: list[ImageLabelState] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    state: str = "new"  # the workflow state (server/workflow.py)
    sha256: str = ""  # where the image file is stored (an export that includes the files)


def _packed(dialect: str) -> Any:
    """The object's fields as one JSON array text: one column for the driver and SQLAlchemy to
    process per row instead of ten (four of them JSON), about 3x faster on a big export."""
    o = LabelObjectRow
    if dialect == "postgresql":
        return cast(func.json_build_array(o.id, o.type, o.label, o.geometry, o.keypoints, o.attributes,
                                          o.rpy, o.occluded, o.z), Text)
    return func.json_array(o.id, o.type, o.label, func.json(o.geometry), func.json(o.keypoints),
                           func.json(o.attributes), func.json(o.rpy), o.occluded, o.z, type_=Text)


class Packed(NamedTuple):
    """A batch's object rows as the database wrote them, not yet decoded: one JSON array of the
    rows (each ``[id, type, label, geometry, keypoints, attributes, rpy, occluded, z]``, in
    image, z, id order) and each row's image. Small to pickle: an exporter may decode it in a
    worker process (:func:`decode_objects`)."""

    image_ids: list[int]
    text: str


async def _packed_rows(session: AsyncSession, ids: list[int]) -> Packed:
    conn = await session.connection()
    o = LabelObjectRow
    rows = await conn.execute(select(o.image_id, _packed(conn.dialect.name)).where(o.image_id.in_(ids))
                              .order_by(o.image_id, o.z, o.id))
    image_ids, texts = [], []
    for image_id, packed in rows:
        image_ids.append(image_id)
        texts.append(packed)
    return Packed(image_ids, "[" + ",".join(texts) + "]")


def decode_objects(records: list[ImageRecord], packed: Packed) -> list[ImageRecord]:
    """Fill each record's ``objects`` (in its wire form) from ``packed``; ``records`` back."""
    by_id = {r.id: r.objects for r in records}
    for image_id, (oid, kind, label, geometry, keypoints, attributes, rpy, occluded, z) in zip(
            packed.image_ids, server_loads(packed.text), strict=True):
        # SQLite's json_array gives booleans as 0/1.
        by_id[image_id].append(object_dict(oid, kind, label, geometry, keypoints, attributes, rpy,
                                           bool(occluded), z))
    return records


async def _read_batch(
    sessions: Sessions, project_id: int, flt: ImageFilter | None, after: int,
    labels: bool, objects: bool, batch: int,
) -> tuple[list[ImageRecord], Packed | None]:
    """The next batch's images (objects not filled in) and, with ``objects``, their packed rows."""
    async with reading(sessions) as session:
        stmt: Any = select(Image.id, Image.name, Image.width, Image.height, Image.state,
                           Image.sha256).where(
            Image.project_id == project_id, Image.id > after)
        if flt is not None:
            stmt = apply_filter(stmt, flt)
        rows = (await session.execute(stmt.order_by(Image.id).limit(batch))).all()
        if not rows:
            return [], None
        ids = [r.id for r in rows]
        states = await read_labels(session, ids) if labels else {}
        packed = await _packed_rows(session, ids) if objects else None
    return [ImageRecord(r.id, r.name, r.width, r.height, states.get(r.id, []), [], r.state, r.sha256)
            for r in rows], packed


async def _batches(
    sessions: Sessions, project_id: int, flt: ImageFilter | None, labels: bool, objects: bool, batch: int,
) -> AsyncGenerator[tuple[list[ImageRecord], Packed | None], None]:
    """Every batch in id order; the next one is read while the caller converts this one."""
    ahead = asyncio.ensure_future(_read_batch(sessions, project_id, flt, 0, labels, objects, batch))
    try:
        while (read := await ahead)[0]:
            records = read[0]
            ahead = asyncio.ensure_future(
                _read_batch(sessions, project_id, flt, records[-1].id, labels, objects, batch))
            if isinstance(sessions, Snapshot) and sessions.on_batch is not None:
                await sessions.on_batch(len(records))
            yield read
    finally:
        if not ahead.done():  # the client went away: stop reading
            ahead.cancel()
            with suppress(asyncio.CancelledError):
                await ahead


async def iter_packed(
    sessions: Sessions, project_id: int, flt: ImageFilter | None,
    *, labels: bool = True, batch: int = BATCH,
) -> AsyncIterator[tuple[list[ImageRecord], Packed]]:
    """:func:`iter_images` with each batch's objects left packed, for :func:`decode_objects`
    wherever the exporter converts the batch (a worker process: ``coco``)."""
    async with aclosing(_batches(sessions, project_id, flt, labels, True, batch)) as batches:
        async for records, packed in batches:
            assert packed is not None
            yield records, packed


async def iter_images(
    sessions: Sessions, project_id: int, flt: ImageFilter | None,
    *, labels: bool = True, objects: bool = True, batch: int = BATCH,
) -> AsyncIterator[list[ImageRecord]]:
    """Batches of images (ordered by id) matching ``flt`` with their labels and objects. The next
    batch is read while the caller converts this one."""
    async with aclosing(_batches(sessions, project_id, flt, labels, objects, batch)) as batches:
        async for records, packed in batches:
            yield records if packed is None else decode_objects(records, packed)


async def label_defs(sessions: Sessions, project_id: int) -> list[dict[str, Any]]:
    async with reading(sessions) as session:
        rows = await session.execute(select(LabelDef.name, LabelDef.color, LabelDef.shortcut)
                                     .where(LabelDef.project_id == project_id).order_by(LabelDef.name))
        return [{"name": n, "color": c, "shortcut": s} for n, c, s in rows]


async def object_labels(sessions: Sessions, project_id: int) -> list[str]:
    """Distinct object label names of the project, sorted (stable category/class ids)."""
    async with reading(sessions) as session:
        rows = await session.execute(select(LabelObjectRow.label).where(
            LabelObjectRow.project_id == project_id).distinct())
        return sorted({r for (r,) in rows})
