"""The one commit path for edits: check, apply, write state and the op-log row — in one transaction.

Used by the socket hub, REST routes and imports. The caller owns the transaction; nobody hears of
an op before it commits (``server._oplog`` announces committed seqs to the hub after commit).
The ops as data (parsing, JSON forms, the ids they read) are in ``server._edit_ops``; the lease
an edit runs under and the labeling time it records, in ``server._edit_lease``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import _edit_lease, _pg_writes, offload
from server import _label_store as label_store
from server._edit_ops import EditError, object_ids, op_to_dict, parse_geometry, parse_object_op
from server._object_store import OBJECT_VALUES, ObjectWrites, load_objects, row_to_dict
from server._oplog import LoggedOp, notify_after_commit, reserve_seqs
from server._sources import Sourced, annotate, set_sources, source_after, trusted
from server.classification import (
    LABEL_OP_KINDS,
    ClassificationError,
    apply_label_op,
    parse_label_op,
    sync_label_ops,
)
from server.db import is_postgresql, run
from server.geometry import (
    GeometryError,
    LabelObject,
    TooCostly,
    edit,
    object_to_dict,
    op_cost,
    parse_object,
)
from server.geometry import parse_op as parse_geometry_op
from server.geometry.cost import check_cost
from server.geometry.edits import Loaded
from server.geometry.plain import PlainCreates, fits_policy
from server.models import Image, OpLogEntry, utcnow
from server.preferences import LabelingSettings, geometry_policy

# The op forms are this path's public surface too; the lease helpers are imported from
# ``server._edit_lease`` (where ``TOUCH_RESOLUTION`` is read: patch it there).
__all__ = ["Committed", "EditError", "ImageRef", "LogRow", "Prepared", "append",
           "apply_object_op", "commit_op", "labeled_values", "object_ids", "op_to_dict",
           "parse_object_op"]


@dataclass
class ImageRef:
    """The image columns an edit reads (and the object count it keeps up to date)."""

    id: int
    project_id: int
    width: int
    height: int
    object_count: int
    labeled_by: int | None = None
    labeled_at: datetime | None = None


@dataclass(frozen=True)
class Prepared:
    """An object op whose seq is taken and whose objects are read already (on PostgreSQL,
    ``server.hub._context.begin_op`` does both in one round trip)."""

    seq: int
    op: Any  # the parsed geometry op
    rows: Mapping[str, Any]  # object rows by id, as ``load_objects`` returns them


@dataclass(frozen=True)
class Committed:
    seq: int
    op: dict[str, Any]
    inverse: dict[str, Any] | None


@dataclass(frozen=True)
class LogRow:
    """One op-log row to write."""

    project_id: int
    seq: int
    image_id: int | None
    user_id: int | None
    kind: str
    op: dict[str, Any]
    inverse: dict[str, Any] | None
    client_op_id: str | None
    origin: str
    reverts_seq: int | None
    created_at: datetime

    def logged(self, seq: int | None = None) -> LoggedOp:
        """The row as the hub fans it out (``seq``: the one the commit took, if not ``seq``)."""
        return LoggedOp(seq=self.seq if seq is None else seq, image_id=self.image_id,
                        user_id=self.user_id,
                        kind=self.kind, op=self.op, client_op_id=self.client_op_id,
                        origin=self.origin)


# The hot path's statements are built once with bind parameters: building a statement costs
# more CPU than PostgreSQL spends running it (the objects' own: ``server._object_store``).
_LOG_TABLE: Any = OpLogEntry.__table__
_INSERT_LOG = insert(_LOG_TABLE)
_IMAGE_TABLE: Any = Image.__table__
_LABELED = update(_IMAGE_TABLE).where(_IMAGE_TABLE.c.id == bindparam("b_id"))


async def _write_log(session: AsyncSession, log: LogRow) -> None:
    row = {"project_id": log.project_id, "seq": log.seq, "image_id": log.image_id,
           "user_id": log.user_id, "kind": log.kind, "op": log.op, "client_op_id": log.client_op_id,
           "reverts_seq": log.reverts_seq, "origin": log.origin, "created_at": log.created_at}
    if log.inverse is not None:
        # Left out otherwise: SQL NULL, not JSON null, so "has an inverse" is a plain IS NOT NULL.
        row["inverse"] = log.inverse
    await run(session, _INSERT_LOG, row)
    notify_after_commit(session, log.project_id, log.seq, log.logged())


async def append(session: AsyncSession, *, project_id: int, image_id: int | None,
                 user_id: int | None, kind: str, op: dict[str, Any], inverse: dict[str, Any] | None,
                 client_op_id: str | None, origin: str, reverts_seq: int | None = None,
                 seq: int | None = None) -> int:
    """Write one log row (with ``seq`` when the caller reserved it already)."""
    if seq is None:
        seq = await reserve_seqs(session, project_id, 1)
    await _write_log(session, LogRow(
        project_id=project_id, seq=seq, image_id=image_id, user_id=user_id, kind=kind, op=op,
        inverse=inverse, client_op_id=client_op_id, origin=origin, reverts_seq=reverts_seq,
        created_at=utcnow()))
    return seq


def labeled_values(image: ImageRef, count_before: int, user_id: int,
                    now: datetime) -> dict[str, Any]:
    """The image columns an edit changes: its object count, and "last labeled" to the second
    (a burst of one labeler's edits writes it once)."""
    values: dict[str, Any] = {}
    if image.object_count != count_before:
        values["object_count"] = image.object_count
    if image.labeled_by != user_id or image.labeled_at is None \
            or (now - image.labeled_at).total_seconds() >= _edit_lease.TOUCH_RESOLUTION:
        values.update(labeled_at=now, labeled_by=user_id)
    return values


async def commit_op(
    session: AsyncSession, *, project_id: int, image: ImageRef, user_id: int,
    op_data: Any, settings: LabelingSettings, client_op_id: str | None = None,
    origin: str = "edit", reverts_seq: int | None = None, prepared: Prepared | None = None,
) -> Committed:
    """Apply one op to ``image`` and log it. Raises :class:`EditError`; writes nothing then.

    The caller has checked that ``client_op_id`` is not a resend (``server.hub._context``).
    """
    # The seq first: it locks the project row before any state is read, the order every other
    # writer of the project (bulk labels, imports) follows, so none of them can commit between
    # this read and this write, and none can deadlock with it. (``prepared``: done so already.)
    seq = prepared.seq if prepared is not None else await reserve_seqs(session, project_id, 1)
    count = image.object_count
    kind = op_data.get("kind") if isinstance(op_data, dict) else None
    new_labels: set[str] = set()
    writes: ObjectWrites | None = None
    if kind in LABEL_OP_KINDS:
        op, inverse = await _apply_label(session, project_id, image.id, user_id, op_data)
    else:
        op, inverse, new_labels, writes = await _apply_objects(
            session, project_id, image, user_id, op_data, settings, origin, prepared)
    log = LogRow(project_id=project_id, seq=seq, image_id=image.id, user_id=user_id,
                 kind=str(op.get("kind")), op=op, inverse=inverse, client_op_id=client_op_id,
                 origin=origin, reverts_seq=reverts_seq, created_at=utcnow())
    labeled = labeled_values(image, count, user_id, log.created_at)
    if writes is not None and is_postgresql(session):
        # Objects, the log row and the image's columns in one statement (server/_pg_writes.py).
        await _pg_writes.write(session, writes, log, labeled)
        notify_after_commit(session, project_id, seq, log.logged())
    else:
        if writes is not None:
            await writes.run(session)
        await _write_log(session, log)
        if labeled:
            await run(session, _LABELED, {"b_id": image.id, **labeled})
    if new_labels and settings.synchronize_labels:
        await _sync(session, project_id, image.id, user_id, new_labels)
    return Committed(seq=seq, op=op, inverse=inverse)


async def _apply_label(session: AsyncSession, project_id: int, image_id: int, user_id: int,
                       op_data: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    try:
        op = parse_label_op(op_data)
    except ClassificationError as exc:
        raise EditError("invalid_op", str(exc), getattr(exc, "field", None)) from None
    state = await label_store.read_image_labels(session, image_id)
    new_state, inverse = apply_label_op(state, op, user_id)
    if inverse is not None:
        await label_store.write_image_labels(session, project_id, image_id, new_state)
    return op_to_dict(op), op_to_dict(inverse) if inverse is not None else None


async def _sync(session: AsyncSession, project_id: int, image_id: int, user_id: int,
                labels: set[str]) -> None:
    """Label sync: each new object label also becomes a classification label (source sync)."""
    state = await label_store.read_image_labels(session, image_id)
    for name in sorted(labels):
        for op in sync_label_ops(name, state):
            state, inverse = apply_label_op(state, op, user_id)
            if inverse is None:
                continue
            await label_store.write_image_labels(session, project_id, image_id, state)
            await append(session, project_id=project_id, image_id=image_id, user_id=user_id,
                         kind=op.kind, op=op_to_dict(op), inverse=op_to_dict(inverse),
                         client_op_id=None, origin="sync")


async def _apply_objects(
    session: AsyncSession, project_id: int, image: ImageRef, user_id: int, op_data: Any,
    settings: LabelingSettings, origin: str, prepared: Prepared | None = None,
) -> tuple[dict[str, Any], dict[str, Any], set[str], ObjectWrites]:
    """The op applied in memory: its dict, inverse, new object labels and the writes to make."""
    if prepared is not None:
        op, rows = prepared.op, prepared.rows
    else:
        op = parse_geometry(op_data)
        rows = await load_objects(session, image.id, object_ids(op))
    return await apply_object_op(op, rows, project_id=project_id, image=image, user_id=user_id,
                                 settings=settings, origin=origin)


async def apply_object_op(
    op: Any, rows: Mapping[str, Any], *, project_id: int, image: ImageRef, user_id: int,
    settings: LabelingSettings, origin: str, parsed: Mapping[str, LabelObject] | None = None,
    source: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], set[str], ObjectWrites]:
    """A parsed geometry op applied to the object ``rows`` it reads (no database I/O): its dict,
    inverse, new object labels and the writes to make; ``image.object_count`` becomes the new
    count. ``parsed``: objects of ``rows`` already parsed (by id); the writes carry the changed
    objects parsed too (``ObjectWrites.parsed``).

    Only the pure step (``server.geometry.edit``) may leave the event loop: an op whose
    estimated cost (``server.geometry.cost``) is over the image's limit is refused
    (``too_costly``) before any work, a costly one runs in the worker pool (``busy`` when it is
    full), a cheap one inline. Nothing else about the commit changes.

    A batch creating plain objects (:class:`PlainCreates`) that passes every check as a whole
    (``server.geometry.plain.fits_policy``) is written as it came, without building a model
    per object; otherwise it takes the general path, whose errors name the failing op.

    ``source``: where the objects it creates come from (default ``manual``, ``import`` for an
    import); what happens to the source of objects it changes: ``server._sources``."""
    created = source or ("import" if origin == "import" else "manual")
    given: Mapping[str, str] = {}
    if isinstance(op, Sourced):
        if op.op is None and not trusted(origin):
            raise EditError("invalid_op", "set_source is not an edit a client makes", "kind")
        given = op.sources if trusted(origin) else {}
        if op.op is None:
            return set_sources(rows, given, project_id=project_id, image_id=image.id,
                               user_id=user_id)
        op = op.op
    if isinstance(op, PlainCreates):
        done = _plain(op, rows, project_id=project_id, image=image, user_id=user_id,
                      settings=settings, created=created, given=given)
        if done is not None:
            return done
        op = _general(op)
    try:
        known = parsed or {}
        objects = Loaded({oid: known.get(oid) or parse_object(row_to_dict(r))
                          for oid, r in rows.items()}, image.object_count)
        cost = op_cost(op, objects, image.width, image.height)
        check_cost(cost, image.width, image.height)
        policy = geometry_policy(settings, image.width, image.height)
        result = await offload.run(edit, objects, op, policy, cost=cost)
    except TooCostly as exc:
        raise EditError("too_costly", exc.message, exc.field) from None
    except GeometryError as exc:
        raise EditError("invalid_op", str(exc), exc.field) from None
    except offload.Busy as exc:
        raise EditError("busy", exc.message) from None
    writes = ObjectWrites(image_id=image.id, project_id=project_id, user_id=user_id,
                          source=created, now=utcnow())
    new_labels: set[str] = set()
    after: dict[str, str] = {}
    before = {oid: r.source for oid, r in rows.items()}
    count = image.object_count
    dumped: dict[int, dict[str, Any]] = {}  # a created object is usually stored as sent
    op_dict = op_to_dict(op, dumped)
    for oid, obj in result.changes.items():
        row = rows.get(oid)
        writes.parsed[oid] = obj
        if obj is None:
            if row is not None:
                writes.deletes.append(oid)
                count -= 1
            continue
        data = dumped.get(id(obj)) or object_to_dict(obj)
        values = {k: data[k] for k in OBJECT_VALUES}
        values["source"] = after[oid] = source_after(
            row.source if row is not None else None, given.get(oid), origin, created)
        if obj.label and (row is None or row.label != obj.label):
            new_labels.add(obj.label)
        if row is None:
            writes.inserts.append({"id": oid, "version": 1, **values})
            count += 1
        else:
            writes.updates.append({"id": oid, "version": row.version + 1, **values})
    # The caller writes the new count with the image's other columns, in one statement.
    image.object_count = count
    inverse = op_to_dict(result.inverse)
    annotate(op_dict, inverse, after, before)
    return op_dict, inverse, new_labels, writes


def _general(op: PlainCreates) -> Any:
    """The op as the general path's model (same objects: their JSON forms parse to them)."""
    try:
        return parse_geometry_op(op.data)
    except GeometryError as exc:  # not expected: what plain_creates accepts parses
        raise EditError("invalid_op", str(exc), exc.field) from None


def creates_inverse(ids: list[str]) -> dict[str, Any]:
    """The inverse of a batch creating the objects ``ids`` (in order): their deletes, last first."""
    return {"kind": "batch",
            "ops": [{"kind": "delete", "object_id": oid} for oid in reversed(ids)]}


def _plain(
    op: PlainCreates, rows: Mapping[str, Any], *, project_id: int, image: ImageRef, user_id: int,
    settings: LabelingSettings, created: str, given: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, Any], set[str], ObjectWrites] | None:
    """``apply_object_op`` for a batch of plain creates that passes as a whole; ``None`` when
    the general path must decide (an id taken, a limit reached, a box to snap or clip...)."""
    cost = op_cost(op, {}, image.width, image.height)
    try:
        check_cost(cost, image.width, image.height)
    except TooCostly as exc:
        raise EditError("too_costly", exc.message, exc.field) from None
    policy = geometry_policy(settings, image.width, image.height)
    if not fits_policy(op.objects, policy, rows, image.object_count):
        return None
    writes = ObjectWrites(image_id=image.id, project_id=project_id, user_id=user_id,
                          source=created, now=utcnow())
    for o in op.objects:  # the logged op's objects carry their source (``server._sources``)
        o["source"] = given.get(o["id"], created)
    # A plain object holds its id and ROW_VALUES and nothing else (``plain_creates`` forbids
    # any other key): a copy of it is the row, at a third of the cost of picking each value.
    writes.inserts = [{**o, "version": 1} for o in op.objects]
    ids = op.ids()
    image.object_count += len(ids)
    inverse = creates_inverse(ids)
    labels = {o["label"] for o in op.objects if o["label"]}
    return op.data, inverse, labels, writes
