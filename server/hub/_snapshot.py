"""An image's objects as one JSON array, built by the database.

A snapshot of a busy image is the biggest frame the hub sends (10,000 objects: ~1.5 MB). Decoding
every JSON column into Python and encoding it again costs most of the time, so the database
aggregates the rows into the wire form (``server._object_store.row_to_wire``: the object and
its ``source``, in z order) and the hub splices that text into the frame unparsed.

On PostgreSQL the whole snapshot (the project's seq, the image's project, objects, labels and
lease holder) is one statement (:func:`read_pg`): one statement sees one state of the database, so
it needs no REPEATABLE READ transaction, and it costs one round trip instead of eight (opening an
image took 20 ms, a third of it this, measured).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.protocol import Snapshot, encode

# Each object's JSON text is concatenated, not built by json_build_object and json_agg: the
# same values (to_json escapes strings as they do; the JSON columns are plain json, their text
# as stored: migration 0021), without their spaces: 10,000 boxes in 68 ms instead of 87 with
# jsonb columns, 37 with json (medians of 10, docs/performance.md "Ninth session"). A JSON
# ``null`` in keypoints or attributes (older rows) is told by its text: json has no equality.
_POSTGRESQL = text("""
SELECT coalesce('[' || string_agg(
    '{"id":' || to_json(id)::text || ',"type":' || to_json(type)::text
    || ',"label":' || to_json(label)::text || ',"geometry":' || geometry::text
    || ',"keypoints":' || coalesce(nullif(keypoints::text, 'null'), '[]')
    || ',"attributes":' || coalesce(nullif(attributes::text, 'null'), '{}')
    || ',"rpy":' || coalesce(rpy::text, 'null') || ',"occluded":' || occluded::text
    || ',"z":' || z::text || ',"source":' || to_json(source)::text || '}',
    ',' ORDER BY z, created_at) || ']', '[]')
FROM objects WHERE image_id = :image_id
""")

_SQLITE = text("""
SELECT coalesce(json_group_array(json_object(
    'id', id, 'type', type, 'label', label, 'geometry', json(geometry),
    'keypoints', json(coalesce(nullif(keypoints, 'null'), '[]')),
    'attributes', json(coalesce(nullif(attributes, 'null'), '{}')),
    'rpy', json(rpy), 'occluded', json(CASE WHEN occluded THEN 'true' ELSE 'false' END), 'z', z,
    'source', source)), '[]')
FROM (SELECT * FROM objects WHERE image_id = :image_id ORDER BY z, created_at)
""")

_OBJECTS_PG = _POSTGRESQL.text.replace(":image_id", "$1").strip()
_READ_PG = f"""
SELECT projects.seq, images.project_id,
       ({_OBJECTS_PG}) AS objects,
       (SELECT coalesce(json_agg(json_build_object(
                   'label', label_defs.name, 'is_default', image_labels.is_default,
                   'source', image_labels.source)
               ORDER BY image_labels.created_at, image_labels.label_id), '[]')::text
          FROM image_labels JOIN label_defs ON label_defs.id = image_labels.label_id
         WHERE image_labels.image_id = $1) AS labels,
       image_locks.holder_id, image_locks.expires_at,
       users.name AS holder_name
  FROM images
  JOIN projects ON projects.id = images.project_id
  LEFT JOIN image_locks ON image_locks.image_id = images.id
  LEFT JOIN users ON users.id = image_locks.holder_id
 WHERE images.id = $1
"""


@dataclass(frozen=True)
class SnapshotRow:
    seq: int
    project_id: int
    objects: str  # JSON array text
    labels: list[dict[str, Any]]
    holder_id: int | None
    holder_name: str | None
    expires_at: datetime | None


async def read_pg(driver: Any, image_id: int) -> SnapshotRow | None:
    """Everything a snapshot holds, in one statement (``None``: no such image)."""
    row = await driver.fetchrow(_READ_PG, image_id)
    if row is None:
        return None
    return SnapshotRow(int(row["seq"]), int(row["project_id"]), str(row["objects"]),
                       json.loads(row["labels"]), row["holder_id"], row["holder_name"],
                       row["expires_at"])


_HOLE = '"objects":[]'


async def objects_json(session: AsyncSession, image_id: int) -> str:
    """The image's objects as a JSON array text, ordered by z (then creation)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    stmt = _POSTGRESQL if dialect == "postgresql" else _SQLITE
    return str((await session.execute(stmt, {"image_id": image_id})).scalar_one())


# The objects with the seq they reflect, in one statement (one state of the database on either:
# SQLite's driver runs a lone SELECT outside any BEGIN, so two statements might see two states).
_WITH_SEQ = """
SELECT projects.seq, ({objects}) AS objects
  FROM images JOIN projects ON projects.id = images.project_id
 WHERE images.id = :image_id AND images.project_id = :project_id
"""
_WITH_SEQ_PG = text(_WITH_SEQ.format(objects=_POSTGRESQL.text.strip()))
_WITH_SEQ_SQLITE = text(_WITH_SEQ.format(objects=_SQLITE.text.strip()))


async def objects_with_seq(session: AsyncSession, project_id: int,
                           image_id: int) -> tuple[int, str] | None:
    """The project's seq and the image's objects as a JSON array text that reflects exactly the
    ops up to it (``None``: no such image in the project). For ``GET .../images/{id}/objects``."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    stmt = _WITH_SEQ_PG if dialect == "postgresql" else _WITH_SEQ_SQLITE
    row = (await session.execute(stmt, {"image_id": image_id, "project_id": project_id})).first()
    return None if row is None else (int(row[0]), str(row[1]))


def frame(head: Snapshot, objects: str) -> str:
    """``head`` (a snapshot with no objects) encoded, with the objects array put in."""
    encoded = encode(head)
    at = encoded.index(_HOLE)  # the first match is the field: it precedes labels and lock
    return f"{encoded[:at]}\"objects\":{objects}{encoded[at + len(_HOLE):]}"
