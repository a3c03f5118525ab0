"""An import's object rows and image columns, written in a few statements whatever its size.

Row by row through SQLAlchemy, 200,000 objects cost a statement per image (the deletes), a
``json.dumps`` per JSON column per row and SQLAlchemy's per-row parameter processing: most of
an import's time. Here every value is encoded once, in Python, and handed to the driver:

* SQLite: one ``executemany`` per statement (objects deleted, objects inserted, images
  updated), on the session's connection, in its transaction;
* PostgreSQL: the new rows by ``COPY`` (``copy_records_to_table`` on the transaction's asyncpg
  connection), deletes and image updates as one statement each over ``unnest`` arrays.

The op-log rows go the same way (:func:`write_log`: the rows ``server._oplog.append_ops``
writes, seqs reserved and the commit announced by its own functions).

What is stored is what the ORM stored before: JSON as ``json.dumps`` text (``rpy`` of None as
JSON ``null``), datetimes through the column type's own bind processing on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from server._oplog import PendingOp, notify_after_commit, reserve_seqs
from server.models import LabelObjectRow

__all__ = ["ObjectWrite", "write_import", "write_log"]

_COLUMNS = ("image_id", "id", "project_id", "type", "label", "geometry", "keypoints", "attributes",
            "rpy", "occluded", "z", "version", "source", "created_by", "updated_by", "created_at",
            "updated_at")
_LOG_COLUMNS = ("project_id", "seq", "image_id", "user_id", "kind", "op", "inverse", "client_op_id",
                "reverts_seq", "origin", "created_at")
_SOURCE = "import"


@dataclass(frozen=True, slots=True)
class ObjectWrite:
    """One image's object changes: ``old`` as read (``{"object", "version", "created_by",
    "created_at"}`` by id), ``final`` the objects it ends with, ``touched`` the ids that change
    (deleted, replaced or created)."""

    image_id: int
    old: dict[str, dict[str, Any]]
    final: dict[str, dict[str, Any]]
    touched: list[str]


def _encode(value: Any) -> str:
    if value is None:
        return "null"
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value)


def _rows(project_id: int, user_id: int | None, writes: Sequence[ObjectWrite], now: Any
          ) -> tuple[list[tuple[int, str]], list[tuple[Any, ...]]]:
    """(image id, object id) pairs to delete and the rows to insert, in ``_COLUMNS`` order."""
    deletes: list[tuple[int, str]] = []
    rows: list[tuple[Any, ...]] = []
    dumps = json.dumps
    for w in writes:
        image_id, old, final = w.image_id, w.old, w.final
        for oid in w.touched:
            prev = old.get(oid)
            if prev is not None:
                deletes.append((image_id, oid))
            obj = final.get(oid)
            if obj is None:
                continue
            rows.append((image_id, oid, project_id, obj["type"], obj["label"], dumps(obj["geometry"]),
                         _encode(obj["keypoints"]), _encode(obj["attributes"]), _encode(obj["rpy"]),
                         obj["occluded"], obj["z"], prev["version"] + 1 if prev else 1, _SOURCE,
                         prev["created_by"] if prev else user_id, user_id,
                         prev["created_at"] if prev else now, now))
    return deletes, rows


async def write_import(session: AsyncSession, project_id: int, user_id: int | None,
                       writes: Sequence[ObjectWrite], counts: dict[int, int | None],
                       now: datetime) -> None:
    """Replace the touched objects of ``writes`` and set, on every image of ``counts``,
    ``labeled_at`` = ``now``, ``labeled_by`` = ``user_id`` and ``object_count`` (left as it is
    where the count is None: an image whose labels only changed)."""
    conn = await session.connection()
    deletes, rows = _rows(project_id, user_id, writes, now)
    if conn.dialect.name == "postgresql":
        await _postgresql(conn, deletes, rows, counts, user_id, now)
    else:
        await _sqlite(conn, deletes, rows, counts, user_id, now)


async def _postgresql(conn: AsyncConnection, deletes: list[tuple[int, str]], rows: list[tuple[Any, ...]],
                      counts: dict[int, int | None], user_id: int | None, now: datetime) -> None:
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # asyncpg, inside the session's transaction
    if deletes:
        await driver.execute(
            "DELETE FROM objects AS o USING unnest($1::int[], $2::text[]) AS d(image_id, id) "
            "WHERE o.image_id = d.image_id AND o.id = d.id",
            [d[0] for d in deletes], [d[1] for d in deletes])
    if rows:
        await driver.copy_records_to_table("objects", records=rows, columns=list(_COLUMNS))
    if counts:
        await driver.execute(
            "UPDATE images AS i SET object_count = coalesce(u.n, i.object_count), labeled_at = $3, "
            "labeled_by = $4 FROM unnest($1::int[], $2::int[]) AS u(id, n) WHERE i.id = u.id",
            list(counts), list(counts.values()), now, user_id)


async def _sqlite(conn: AsyncConnection, deletes: list[tuple[int, str]], rows: list[tuple[Any, ...]],
                  counts: dict[int, int | None], user_id: int | None, now: datetime) -> None:
    stamp: Any = LabelObjectRow.__table__.c.created_at.type.bind_processor(conn.dialect)
    now_text = stamp(now)

    def when(value: Any) -> Any:
        return now_text if value is now else stamp(value)

    if deletes:
        await conn.exec_driver_sql("DELETE FROM objects WHERE image_id = ? AND id = ?", deletes)
    if rows:
        sql = (f"INSERT INTO objects ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join('?' for _ in _COLUMNS)})")
        await conn.exec_driver_sql(sql, [(*r[:15], when(r[15]), when(r[16])) for r in rows])
    if counts:
        await conn.exec_driver_sql(
            "UPDATE images SET object_count = coalesce(?, object_count), labeled_at = ?, "
            "labeled_by = ? WHERE id = ?",
            [(n, now_text, user_id, image_id) for image_id, n in counts.items()])


async def write_log(session: AsyncSession, project_id: int, user_id: int | None,
                    ops: Sequence[PendingOp], origin: str, now: datetime) -> int | None:
    """``server._oplog.append_ops`` for an import's many rows: the same rows (consecutive seqs,
    announced after the commit), each op encoded once and written in one statement."""
    if not ops:
        return None
    first = await reserve_seqs(session, project_id, len(ops))
    dumps = json.dumps
    rows = [(project_id, first + i, op.image_id, user_id, op.kind, dumps(op.op),
             None if op.inverse is None else dumps(op.inverse), None, None, origin, now)
            for i, op in enumerate(ops)]
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            "op_log", records=rows, columns=list(_LOG_COLUMNS))
    else:
        stamp: Any = LabelObjectRow.__table__.c.created_at.type.bind_processor(conn.dialect)
        at = stamp(now)
        await conn.exec_driver_sql(
            f"INSERT INTO op_log ({', '.join(_LOG_COLUMNS)}) VALUES ({', '.join('?' for _ in _LOG_COLUMNS)})",
            [(*r[:10], at) for r in rows])
    last = first + len(ops) - 1
    notify_after_commit(session, project_id, last)
    return last
