"""The objects table on the edit path: reading the rows an op touches, the wire form of a row,
and an op's writes statement by statement (``server._pg_writes`` makes them in one call on
PostgreSQL). Like ``server._label_store`` for image labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import run
from server.models import LabelObjectRow


def row_to_dict(row: Any) -> dict[str, Any]:
    """The wire form of an object row (what ``parse_object`` accepts)."""
    return object_dict(row.id, row.type, row.label, row.geometry, row.keypoints, row.attributes,
                       row.rpy, row.occluded, row.z)


def object_dict(oid: str, kind: str, label: str, geometry: Any, keypoints: Any, attributes: Any,
                rpy: Any, occluded: bool, z: int) -> dict[str, Any]:
    """The wire form of an object from its columns' values (an export's packed rows)."""
    return {"id": oid, "type": kind, "label": label, "geometry": geometry,
            "keypoints": keypoints or [], "attributes": attributes or {},
            "rpy": rpy, "occluded": occluded, "z": z}


def row_to_wire(row: Any) -> dict[str, Any]:
    """What a snapshot sends of an object row: its wire form and where it came from."""
    return {**row_to_dict(row), "source": row.source}


OBJECT_VALUES = ("type", "label", "geometry", "keypoints", "attributes", "rpy", "occluded", "z")
#: What an op writes of each object row: its values and where it came from (``server._sources``).
ROW_VALUES = (*OBJECT_VALUES, "source")


@dataclass
class ObjectWrites:
    """What an object op changes in the objects table (each id at most once)."""

    image_id: int
    project_id: int
    user_id: int
    source: str  # new objects' source unless their values name one (``server._sources``)
    now: datetime
    deletes: list[str] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)  # id, version, ROW_VALUES
    updates: list[dict[str, Any]] = field(default_factory=list)  # id, new version, ROW_VALUES
    # The changed objects as the geometry core has them (None: deleted), for a caller keeping
    # them (server.hub._fast_op.Held); never written.
    parsed: dict[str, Any] = field(default_factory=dict)

    async def run(self, session: AsyncSession) -> None:
        """One statement per kind of write, each executed for all its rows at once (SQLite;
        PostgreSQL fuses them, see ``server._pg_writes``): a batch creating 5,000 objects is one
        prepared insert run 5,000 times in the driver, not 5,000 round trips through it."""
        for values in self.inserts:  # ``source`` when the values name none
            if "source" not in values:
                values["source"] = self.source
        if self.deletes:
            await run(session, _DELETE_OBJECT, [{"b_image_id": self.image_id, "b_id": oid}
                                                for oid in self.deletes])
        if len(self.inserts) > _FEW and session.bind is not None \
                and session.bind.dialect.name == "sqlite":
            await _insert_many(session, self)
        elif self.inserts:
            common = {"image_id": self.image_id, "project_id": self.project_id,
                      "source": self.source, "created_by": self.user_id,
                      "updated_by": self.user_id, "created_at": self.now, "updated_at": self.now}
            await run(session, _INSERT_OBJECT, [{**common, **values} for values in self.inserts])
        if self.updates:
            await run(session, _UPDATE_OBJECT, [
                {"b_image_id": self.image_id, "b_id": values["id"], "updated_by": self.user_id,
                 "updated_at": self.now, **{k: v for k, v in values.items() if k != "id"}}
                for values in self.updates])


_OBJECT_COLUMNS = (LabelObjectRow.id, LabelObjectRow.type, LabelObjectRow.label, LabelObjectRow.geometry,
                   LabelObjectRow.keypoints, LabelObjectRow.attributes, LabelObjectRow.rpy,
                   LabelObjectRow.occluded, LabelObjectRow.z, LabelObjectRow.source,
                   LabelObjectRow.version)
_ALL_OBJECTS = select(*_OBJECT_COLUMNS).where(LabelObjectRow.image_id == bindparam("image_id"))
_SOME_OBJECTS = _ALL_OBJECTS.where(LabelObjectRow.id.in_(bindparam("ids", expanding=True)))
_OBJECT_TABLE: Any = LabelObjectRow.__table__
_INSERT_OBJECT = insert(_OBJECT_TABLE)
_UPDATE_OBJECT = update(_OBJECT_TABLE).where(
    _OBJECT_TABLE.c.image_id == bindparam("b_image_id"), _OBJECT_TABLE.c.id == bindparam("b_id"))
_DELETE_OBJECT = delete(_OBJECT_TABLE).where(
    _OBJECT_TABLE.c.image_id == bindparam("b_image_id"), _OBJECT_TABLE.c.id == bindparam("b_id"))


# Many ids travel as one JSON array: an expanding IN renders a parameter per id on every call.
_MANY_OBJECTS = {
    "sqlite": _ALL_OBJECTS.where(text("objects.id IN (SELECT value FROM json_each(:ids_json))")),
    "postgresql": _ALL_OBJECTS.where(text(
        "objects.id IN (SELECT jsonb_array_elements_text(CAST(:ids_json AS jsonb)))")),
}
#: Up to this many objects, an op's reads and inserts take the statements built for few rows.
_FEW = 64


async def load_objects(session: AsyncSession, image_id: int, ids: set[str] | None) -> dict[str, Any]:
    """Object rows (plain column tuples, not ORM instances: cheaper on the hot path) by id."""
    if ids is None:
        result = await run(session, _ALL_OBJECTS, {"image_id": image_id})
    elif not ids:
        return {}
    elif len(ids) <= _FEW or session.bind is None or session.bind.dialect.name not in _MANY_OBJECTS:
        result = await run(session, _SOME_OBJECTS, {"image_id": image_id, "ids": sorted(ids)})
    else:
        result = await run(session, _MANY_OBJECTS[session.bind.dialect.name],
                           {"image_id": image_id, "ids_json": json.dumps(sorted(ids))})
    return {row.id: row for row in result}


async def objects_from(session: AsyncSession, image_ids: list[int],
                       source: str) -> dict[int, dict[str, Any]]:
    """The rows (as :func:`load_objects` gives them) with this ``source``, by image and id."""
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(image_ids), 500):
        result = await session.execute(
            select(LabelObjectRow.image_id, *_OBJECT_COLUMNS)
            .where(LabelObjectRow.image_id.in_(image_ids[start : start + 500]),
                   LabelObjectRow.source == source))
        for row in result:
            out.setdefault(int(row.image_id), {})[row.id] = row
    return out


_COMMON = ("image_id", "project_id", "created_by", "updated_by", "created_at", "updated_at")
_PER_ROW = ("id", "version", *ROW_VALUES)
_INSERT_MANY = (f"INSERT INTO objects ({', '.join(_COMMON + _PER_ROW)}) "
                f"VALUES ({', '.join('?' * len(_COMMON + _PER_ROW))})")  # SQLite's paramstyle


async def _insert_many(session: AsyncSession, writes: ObjectWrites) -> None:
    """Many new objects (SQLite) as one statement run for all of them by the driver, each value
    bound as the columns' own types bind it (the JSON columns' serializer, the dates' format)
    but without SQLAlchemy's per-row parameter handling, which cost more than the inserts."""
    connection = await session.connection()
    dialect = connection.dialect
    columns = _OBJECT_TABLE.c

    def bound(name: str) -> Any:
        process = columns[name].type.dialect_impl(dialect).bind_processor(dialect)
        return _empty_json_once(process) if process and isinstance(columns[name].type, JSON) \
            else process

    common = [(bound(name) or _same)(value) for name, value in zip(_COMMON, (
        writes.image_id, writes.project_id, writes.user_id, writes.user_id, writes.now,
        writes.now), strict=True)]
    processors = [(name, bound(name) or _same) for name in _PER_ROW]
    rows = [(*common, *(proc(values[name]) for name, proc in processors))
            for values in writes.inserts]
    await connection.exec_driver_sql(_INSERT_MANY, rows)


def _same(value: Any) -> Any:
    return value


def _empty_json_once(process: Any) -> Any:
    """A JSON column's bind processor that serializes ``None``, ``[]`` and ``{}`` once: most
    objects have no keypoints, attributes or rpy, and a serializer call each cost as much as the
    row's insert."""
    null, empty_list, empty_dict = process(None), process([]), process({})

    def bind(value: Any) -> Any:
        if value is None:
            return null
        if not value and type(value) is list:
            return empty_list
        if not value and type(value) is dict:
            return empty_dict
        return process(value)

    return bind
