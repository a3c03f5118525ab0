"""An image's objects as one JSON array, built by the database.

A snapshot of a busy image is the biggest frame the hub sends (10,000 objects: ~1.5 MB). Decoding
every JSON column into Python and encoding it again costs most of the time, so the database
aggregates the rows into the wire form (``server._object_store.row_to_dict``'s keys, in z order) and the
hub splices that text into the frame unparsed.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.protocol import Snapshot, encode

_POSTGRESQL = text("""
SELECT coalesce(json_agg(json_build_object(
    'id', id, 'type', type, 'label', label, 'geometry', geometry,
    'keypoints', coalesce(nullif(keypoints, 'null'::jsonb), '[]'::jsonb),
    'attributes', coalesce(nullif(attributes, 'null'::jsonb), '{}'::jsonb),
    'rpy', rpy, 'occluded', occluded, 'z', z) ORDER BY z, created_at), '[]')::text
FROM objects WHERE image_id = :image_id
""")

_SQLITE = text("""
SELECT coalesce(json_group_array(json_object(
    'id', id, 'type', type, 'label', label, 'geometry', json(geometry),
    'keypoints', json(coalesce(nullif(keypoints, 'null'), '[]')),
    'attributes', json(coalesce(nullif(attributes, 'null'), '{}')),
    'rpy', json(rpy), 'occluded', json(CASE WHEN occluded THEN 'true' ELSE 'false' END), 'z', z)), '[]')
FROM (SELECT * FROM objects WHERE image_id = :image_id ORDER BY z, created_at)
""")

_HOLE = '"objects":[]'


async def objects_json(session: AsyncSession, image_id: int) -> str:
    """The image's objects as a JSON array text, ordered by z (then creation)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    stmt = _POSTGRESQL if dialect == "postgresql" else _SQLITE
    return str((await session.execute(stmt, {"image_id": image_id})).scalar_one())


def frame(head: Snapshot, objects: str) -> str:
    """``head`` (a snapshot with no objects) encoded, with the objects array put in."""
    encoded = encode(head)
    at = encoded.index(_HOLE)  # the first match is the field: it precedes labels and lock
    return f"{encoded[:at]}\"objects\":{objects}{encoded[at + len(_HOLE):]}"
