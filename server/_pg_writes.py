"""An edit's writes as one PostgreSQL statement: objects deleted, created and updated, the op-log
row and the image's columns.

Statement by statement an ordinary edit (one object changed) took two or three round trips here,
each costing more client CPU and backend wake-ups than PostgreSQL spends running it (see
docs/performance.md, "Hub"). Data-modifying CTEs run in one statement; the objects come in as
parallel arrays (``unnest``), so one prebuilt statement serves every op, whatever it touches.
Each object id appears at most once among the deletes, inserts and updates, which is what lets
them share one statement. JSON travels as text and is cast to ``jsonb`` (Python ``None`` becomes
JSON ``null`` for an object's ``rpy``, as the ORM's JSON type stores it, and SQL NULL for a log
row without inverse).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import ARRAY, BigInteger, Boolean, DateTime, Integer, String, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import run

if TYPE_CHECKING:
    from server.edits import LogRow, ObjectWrites

_TEXTS = ARRAY(String())
_ARRAYS: dict[str, Any] = {
    "del_ids": _TEXTS,
    "u_id": _TEXTS, "u_type": _TEXTS, "u_label": _TEXTS, "u_geometry": _TEXTS,
    "u_keypoints": _TEXTS, "u_attributes": _TEXTS, "u_rpy": _TEXTS,
    "u_occluded": ARRAY(Boolean()), "u_z": ARRAY(Integer()), "u_version": ARRAY(Integer()),
    "i_id": _TEXTS, "i_type": _TEXTS, "i_label": _TEXTS, "i_geometry": _TEXTS,
    "i_keypoints": _TEXTS, "i_attributes": _TEXTS, "i_rpy": _TEXTS,
    "i_occluded": ARRAY(Boolean()), "i_z": ARRAY(Integer()),
}
_COLUMNS = ("id", "type", "label", "geometry", "keypoints", "attributes", "rpy", "occluded", "z")
_JSON = frozenset({"geometry", "keypoints", "attributes", "rpy"})

_WRITE = text("""
WITH
del AS (
    DELETE FROM objects WHERE image_id = :image_id AND id = ANY (:del_ids)
),
upd AS (
    UPDATE objects AS o
       SET type = u.type, label = u.label, geometry = CAST(u.geometry AS jsonb),
           keypoints = CAST(u.keypoints AS jsonb), attributes = CAST(u.attributes AS jsonb),
           rpy = CAST(u.rpy AS jsonb), occluded = u.occluded, z = u.z, version = u.version,
           updated_by = :user_id, updated_at = :now
      FROM unnest(:u_id, :u_type, :u_label, :u_geometry, :u_keypoints, :u_attributes, :u_rpy,
                  :u_occluded, :u_z, :u_version)
           AS u (id, type, label, geometry, keypoints, attributes, rpy, occluded, z, version)
     WHERE o.image_id = :image_id AND o.id = u.id
),
ins AS (
    INSERT INTO objects (image_id, id, project_id, type, label, geometry, keypoints, attributes,
                         rpy, occluded, z, version, source, created_by, updated_by, created_at,
                         updated_at)
    SELECT :image_id, i.id, :project_id, i.type, i.label, CAST(i.geometry AS jsonb),
           CAST(i.keypoints AS jsonb), CAST(i.attributes AS jsonb), CAST(i.rpy AS jsonb),
           i.occluded, i.z, 1, :source, :user_id, :user_id, :now, :now
      FROM unnest(:i_id, :i_type, :i_label, :i_geometry, :i_keypoints, :i_attributes, :i_rpy,
                  :i_occluded, :i_z)
           AS i (id, type, label, geometry, keypoints, attributes, rpy, occluded, z)
),
img AS (
    UPDATE images
       SET object_count = COALESCE(:object_count, object_count),
           labeled_at = COALESCE(:labeled_at, labeled_at),
           labeled_by = COALESCE(:labeled_by, labeled_by)
     WHERE id = :image_id AND :touch_image
)
INSERT INTO op_log (project_id, seq, image_id, user_id, kind, op, inverse, client_op_id,
                    reverts_seq, origin, created_at)
VALUES (:project_id, :seq, :image_id, :user_id, :kind, CAST(:op AS jsonb),
        CAST(:inverse AS jsonb), :client_op_id, :reverts_seq, :origin, :logged_at)
""").bindparams(
    *(bindparam(name, type_=kind) for name, kind in _ARRAYS.items()),
    bindparam("image_id", type_=Integer()), bindparam("project_id", type_=Integer()),
    bindparam("user_id", type_=Integer()), bindparam("seq", type_=BigInteger()),
    bindparam("reverts_seq", type_=BigInteger()), bindparam("now", type_=DateTime(timezone=True)),
    bindparam("logged_at", type_=DateTime(timezone=True)),
    bindparam("labeled_at", type_=DateTime(timezone=True)),
    bindparam("object_count", type_=Integer()), bindparam("labeled_by", type_=Integer()),
    bindparam("touch_image", type_=Boolean()), bindparam("op", type_=String()),
    bindparam("inverse", type_=String()), bindparam("kind", type_=String()),
    bindparam("client_op_id", type_=String()), bindparam("origin", type_=String()),
    bindparam("source", type_=String()))


def _columns(prefix: str, rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for name in _COLUMNS + extra:
        values = [row[name] for row in rows]
        out[f"{prefix}_{name}"] = [json.dumps(v) for v in values] if name in _JSON else values
    return out


async def write(session: AsyncSession, writes: ObjectWrites, log: LogRow,
                image: dict[str, Any]) -> None:
    """``image``: the image columns to set (``object_count``, ``labeled_at``, ``labeled_by``)."""
    params: dict[str, Any] = {
        "image_id": writes.image_id, "project_id": writes.project_id, "user_id": writes.user_id,
        "source": writes.source, "now": writes.now, "logged_at": log.created_at, "del_ids": writes.deletes,
        **_columns("u", writes.updates, ("version",)), **_columns("i", writes.inserts),
        "object_count": image.get("object_count"), "labeled_at": image.get("labeled_at"),
        "labeled_by": image.get("labeled_by"), "touch_image": bool(image),
        "seq": log.seq, "kind": log.kind, "op": json.dumps(log.op),
        "inverse": None if log.inverse is None else json.dumps(log.inverse),
        "client_op_id": log.client_op_id, "reverts_seq": log.reverts_seq, "origin": log.origin,
    }
    await run(session, _WRITE, params)
