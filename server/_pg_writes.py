"""An edit's writes as one PostgreSQL statement: objects deleted, created and updated, the op-log
row and the image's columns.

Statement by statement an ordinary edit (one object changed) took two or three round trips here,
each costing more client CPU and backend wake-ups than PostgreSQL spends running it (see
docs/performance.md, "Hub"). Data-modifying CTEs run in one statement, and one prebuilt
statement serves every op, whatever it touches. Each object id appears at most once among the deletes, inserts and updates, which is what lets
them share one statement. Everything variable travels as one JSON text per part, read with
``jsonb_to_recordset``: array parameters would make asyncpg introspect their types on every new
pooled connection (measured: ~10-20 ms on the first edits of each). An object's ``rpy`` of
``None`` is stored as JSON ``null``, as the ORM's JSON type stores it; a log row without inverse
gets SQL NULL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, String, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import run

if TYPE_CHECKING:
    from server.edits import LogRow, ObjectWrites

_RECORD = ("id varchar, type varchar, label varchar, geometry jsonb, keypoints jsonb, "
           "attributes jsonb, rpy jsonb, occluded boolean, z integer, version integer")

_WRITE = text(f"""
WITH
del AS (
    DELETE FROM objects
     WHERE image_id = :image_id
       AND id IN (SELECT jsonb_array_elements_text(CAST(:deletes AS jsonb)))
),
upd AS (
    UPDATE objects AS o
       SET type = u.type, label = u.label, geometry = u.geometry, keypoints = u.keypoints,
           attributes = u.attributes, rpy = COALESCE(u.rpy, 'null'), occluded = u.occluded,
           z = u.z, version = u.version, updated_by = :user_id, updated_at = :now
      FROM jsonb_to_recordset(CAST(:updates AS jsonb)) AS u ({_RECORD})
     WHERE o.image_id = :image_id AND o.id = u.id
),
ins AS (
    INSERT INTO objects (image_id, id, project_id, type, label, geometry, keypoints, attributes,
                         rpy, occluded, z, version, source, created_by, updated_by, created_at,
                         updated_at)
    SELECT :image_id, i.id, :project_id, i.type, i.label, i.geometry, i.keypoints, i.attributes,
           COALESCE(i.rpy, 'null'), i.occluded, i.z, i.version, :source, :user_id, :user_id,
           :now, :now
      FROM jsonb_to_recordset(CAST(:inserts AS jsonb)) AS i ({_RECORD})
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
    bindparam("image_id", type_=Integer()), bindparam("project_id", type_=Integer()),
    bindparam("user_id", type_=Integer()), bindparam("seq", type_=BigInteger()),
    bindparam("reverts_seq", type_=BigInteger()), bindparam("now", type_=DateTime(timezone=True)),
    bindparam("logged_at", type_=DateTime(timezone=True)),
    bindparam("labeled_at", type_=DateTime(timezone=True)),
    bindparam("object_count", type_=Integer()), bindparam("labeled_by", type_=Integer()),
    bindparam("touch_image", type_=Boolean()),
    *(bindparam(name, type_=String()) for name in (
        "deletes", "updates", "inserts", "op", "inverse", "kind", "client_op_id", "origin",
        "source")))


async def write(session: AsyncSession, writes: ObjectWrites, log: LogRow,
                image: dict[str, Any]) -> None:
    """``image``: the image columns to set (``object_count``, ``labeled_at``, ``labeled_by``)."""
    params: dict[str, Any] = {
        "image_id": writes.image_id, "project_id": writes.project_id, "user_id": writes.user_id,
        "source": writes.source, "now": writes.now, "logged_at": log.created_at,
        "deletes": json.dumps(writes.deletes), "updates": json.dumps(writes.updates),
        "inserts": json.dumps(writes.inserts),
        "object_count": image.get("object_count"), "labeled_at": image.get("labeled_at"),
        "labeled_by": image.get("labeled_by"), "touch_image": bool(image),
        "seq": log.seq, "kind": log.kind, "op": json.dumps(log.op),
        "inverse": None if log.inverse is None else json.dumps(log.inverse),
        "client_op_id": log.client_op_id, "reverts_seq": log.reverts_seq, "origin": log.origin,
    }
    await run(session, _WRITE, params)
