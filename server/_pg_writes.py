"""An edit's writes as one PostgreSQL call: objects deleted, updated and created, the image's
columns and the op-log row (``labelhub_op_write``, migrations/versions/0002 and 0019).

Statement by statement an ordinary edit (one object changed) took two or three round trips here,
each costing more client CPU and backend wake-ups than PostgreSQL spends running it (see
docs/performance.md, "Hub"). Inside the function every object write is a primary-key statement,
whatever the table's statistics say. Each object id appears at most once among the deletes,
updates and inserts. Everything variable travels as JSON text or, the new objects, as ``text[]``
(arrays of other types would make asyncpg introspect them on every new pooled connection: 10-20
ms on the first edits of each, measured; ``text[]`` is one its core knows). An object's ``rpy``
of ``None`` is stored as JSON ``null``, as the ORM's JSON type stores it; a log row without
inverse gets SQL NULL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import ARRAY, BigInteger, DateTime, Integer, String, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import run

if TYPE_CHECKING:
    from server._object_store import ObjectWrites
    from server.edits import LogRow

# migrations/versions/0019 defines the function (0002 the first); JSON goes as text, cast once
# here to json, not jsonb: the function converts only each object's values (a big batch's
# ~2 MB of text would otherwise be parsed into jsonb whole first).
_WRITE = text(
    "SELECT labelhub_op_write(:project_id, :image_id, :user_id, :source, :now, "
    "CAST(:deletes AS json), CAST(:updates AS json), CAST(:inserts AS text[]), "
    ":object_count, :labeled_at, :labeled_by, :seq, :kind, CAST(:op AS json), "
    "CAST(:inverse AS json), :client_op_id, :reverts_seq, :origin, :logged_at)"
).bindparams(
    bindparam("image_id", type_=Integer()), bindparam("project_id", type_=Integer()),
    bindparam("user_id", type_=Integer()), bindparam("seq", type_=BigInteger()),
    bindparam("reverts_seq", type_=BigInteger()), bindparam("now", type_=DateTime(timezone=True)),
    bindparam("logged_at", type_=DateTime(timezone=True)),
    bindparam("labeled_at", type_=DateTime(timezone=True)),
    bindparam("object_count", type_=Integer()), bindparam("labeled_by", type_=Integer()),
    bindparam("inserts", type_=ARRAY(Text(), dimensions=2)),
    *(bindparam(name, type_=String()) for name in (
        "deletes", "updates", "op", "inverse", "kind", "client_op_id", "origin",
        "source")))


#: The columns of ``inserts`` as labelhub_op_write takes them (migrations/versions/0019).
INSERT_COLUMNS = ("id", "type", "label", "geometry", "keypoints", "attributes", "rpy",
                  "occluded", "z", "version", "source")


def _json_or_null(value: Any) -> str | None:
    if value is None:
        return None
    if not value and type(value) in _EMPTY:  # most objects' keypoints and attributes
        return _EMPTY[type(value)]
    return json_text(value)


_EMPTY: dict[type, str] = {list: "[]", dict: "{}"}


def insert_columns(inserts: list[dict[str, Any]]) -> list[list[str | None]]:
    """New objects' values as labelhub_op_write's ``p_inserts``: one list of text per column of
    :data:`INSERT_COLUMNS` (a two-dimensional ``text[]``; none at all for no objects). JSON
    values as JSON text (``None``: SQL NULL), booleans and integers as PostgreSQL reads them,
    a missing ``source`` as NULL (the function's default source)."""
    if not inserts:
        return []
    return [
        [v["id"] for v in inserts], [v["type"] for v in inserts],
        [v["label"] for v in inserts], [json_text(v["geometry"]) for v in inserts],
        [_json_or_null(v["keypoints"]) for v in inserts],
        [_json_or_null(v["attributes"]) for v in inserts],
        [_json_or_null(v["rpy"]) for v in inserts],
        ["true" if v["occluded"] else "false" for v in inserts],
        [str(int(v["z"])) for v in inserts], [str(int(v["version"])) for v in inserts],
        [v.get("source") for v in inserts],
    ]


def json_text(value: Any) -> str:
    """``value`` as JSON text for a parameter: orjson's (a 5,000-box batch's objects, op and
    inverse in ~2 ms instead of ~70), the standard library's for what orjson refuses (an integer
    past 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


async def write(session: AsyncSession, writes: ObjectWrites, log: LogRow,
                image: dict[str, Any]) -> None:
    """``image``: the image columns to set (``object_count``, ``labeled_at``, ``labeled_by``)."""
    params: dict[str, Any] = {
        "image_id": writes.image_id, "project_id": writes.project_id, "user_id": writes.user_id,
        "source": writes.source, "now": writes.now, "logged_at": log.created_at,
        "deletes": json_text(writes.deletes), "updates": json_text(writes.updates),
        "inserts": insert_columns(writes.inserts),
        "object_count": image.get("object_count"), "labeled_at": image.get("labeled_at"),
        "labeled_by": image.get("labeled_by"),
        "seq": log.seq, "kind": log.kind, "op": json_text(log.op),
        "inverse": None if log.inverse is None else json_text(log.inverse),
        "client_op_id": log.client_op_id, "reverts_seq": log.reverts_seq, "origin": log.origin,
    }
    await run(session, _WRITE, params)
