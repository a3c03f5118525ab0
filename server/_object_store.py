"""The objects table on the edit path: reading the rows an op touches, the wire form of a row,
and an op's writes statement by statement (``server._pg_writes`` makes them in one call on
PostgreSQL). Like ``server._label_store`` for image labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import run
from server.models import LabelObjectRow


def row_to_dict(row: Any) -> dict[str, Any]:
    """The wire form of an object row (what ``parse_object`` accepts)."""
    return {"id": row.id, "type": row.type, "label": row.label, "geometry": row.geometry,
            "keypoints": row.keypoints or [], "attributes": row.attributes or {},
            "rpy": row.rpy, "occluded": row.occluded, "z": row.z}


OBJECT_VALUES = ("type", "label", "geometry", "keypoints", "attributes", "rpy", "occluded", "z")


@dataclass
class ObjectWrites:
    """What an object op changes in the objects table (each id at most once)."""

    image_id: int
    project_id: int
    user_id: int
    source: str
    now: datetime
    deletes: list[str] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)  # id, version, OBJECT_VALUES
    updates: list[dict[str, Any]] = field(default_factory=list)  # id, new version, OBJECT_VALUES
    # The changed objects as the geometry core has them (None: deleted), for a caller keeping
    # them (server.hub._fast_op.Held); never written.
    parsed: dict[str, Any] = field(default_factory=dict)

    async def run(self, session: AsyncSession) -> None:
        """One statement per kind of write, each executed for all its rows at once (SQLite;
        PostgreSQL fuses them, see ``server._pg_writes``): a batch creating 5,000 objects is one
        prepared insert run 5,000 times in the driver, not 5,000 round trips through it."""
        if self.deletes:
            await run(session, _DELETE_OBJECT, [{"b_image_id": self.image_id, "b_id": oid}
                                                for oid in self.deletes])
        if self.inserts:
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
                   LabelObjectRow.occluded, LabelObjectRow.z, LabelObjectRow.version)
_ALL_OBJECTS = select(*_OBJECT_COLUMNS).where(LabelObjectRow.image_id == bindparam("image_id"))
_SOME_OBJECTS = _ALL_OBJECTS.where(LabelObjectRow.id.in_(bindparam("ids", expanding=True)))
_OBJECT_TABLE: Any = LabelObjectRow.__table__
_INSERT_OBJECT = insert(_OBJECT_TABLE)
_UPDATE_OBJECT = update(_OBJECT_TABLE).where(
    _OBJECT_TABLE.c.image_id == bindparam("b_image_id"), _OBJECT_TABLE.c.id == bindparam("b_id"))
_DELETE_OBJECT = delete(_OBJECT_TABLE).where(
    _OBJECT_TABLE.c.image_id == bindparam("b_image_id"), _OBJECT_TABLE.c.id == bindparam("b_id"))


async def load_objects(session: AsyncSession, image_id: int, ids: set[str] | None) -> dict[str, Any]:
    """Object rows (plain column tuples, not ORM instances: cheaper on the hot path) by id."""
    if ids is None:
        result = await run(session, _ALL_OBJECTS, {"image_id": image_id})
    elif not ids:
        return {}
    else:
        result = await run(session, _SOME_OBJECTS, {"image_id": image_id, "ids": sorted(ids)})
    return {row.id: row for row in result}
