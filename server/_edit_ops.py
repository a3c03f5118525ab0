"""The edit path's ops as data: parsed from a client's JSON, written back as JSON for the log, and
the object ids each reads. No database I/O; ``server.edits`` commits what is parsed here, and
re-exports :class:`EditError` and these functions as its own.
"""

from __future__ import annotations

from typing import Any

from server._sources import SET_SOURCE, Sourced, SourceError, strip
from server.classification import LABEL_OP_KINDS
from server.geometry import Batch as GeoBatch
from server.geometry import Create as GeoCreate
from server.geometry import Delete as GeoDelete
from server.geometry import GeometryError, object_to_dict
from server.geometry import op_to_dict as geometry_op_to_dict
from server.geometry import parse_op as parse_geometry_op
from server.geometry.plain import PlainCreates, plain_creates

__all__ = ["EditError", "object_ids", "op_to_dict", "parse_geometry", "parse_object_op"]


class EditError(Exception):
    """An op that cannot be applied; nothing was written. ``code`` is on the wire."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def parse_object_op(op_data: Any) -> Any | None:
    """The parsed geometry op; ``None`` for a classification op. Raises :class:`EditError`."""
    kind = op_data.get("kind") if isinstance(op_data, dict) else None
    if kind in LABEL_OP_KINDS:
        return None
    return parse_geometry(op_data)


def parse_geometry(op_data: Any) -> Any:
    """A batch creating plain objects (boxes, points) as :class:`PlainCreates`, checked in bulk
    (``server.geometry.plain``); any other op as its model; either wrapped in :class:`Sourced`
    when its JSON named sources (``server._sources``), as is a ``set_source``. Raises
    :class:`EditError`."""
    try:
        op_data, given = strip(op_data)
    except SourceError as exc:
        raise EditError("invalid_op", str(exc), "sources") from None
    if isinstance(op_data, dict) and op_data.get("kind") == SET_SOURCE:
        if set(op_data) != {"kind"} or not given:
            raise EditError("invalid_op", "set_source takes sources only", "sources")
        return Sourced(None, given)
    plain = plain_creates(op_data)
    if plain is not None:
        return Sourced(plain, given) if given else plain
    try:
        parsed = parse_geometry_op(op_data)
    except GeometryError as exc:
        raise EditError("invalid_op", str(exc), exc.field) from None
    return Sourced(parsed, given) if given else parsed


# What the fast forms below write for these kinds: checked here, so a field added to either op
# cannot be dropped from the log unnoticed.
assert set(GeoCreate.model_fields) == {"kind", "object"}
assert set(GeoDelete.model_fields) == {"kind", "object_id"}


def op_to_dict(op: Any, objects: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The op's JSON form, as ``server.geometry.op_to_dict`` gives it. A batch's creates and
    deletes are written directly: through pydantic's nested serializers a 5,000-create batch
    took 4x as long. ``objects``: created objects' dicts by ``id()`` of the object, filled in
    (an edit writes the same objects as rows)."""
    if isinstance(op, dict):
        return op
    if isinstance(op, PlainCreates):
        return op.data
    if isinstance(op, GeoBatch):
        return {"kind": "batch", "ops": [op_to_dict(sub, objects) for sub in op.ops]}
    if isinstance(op, GeoCreate):
        data = object_to_dict(op.object)
        if objects is not None:
            objects[id(op.object)] = data
        return {"kind": "create", "object": data}
    if isinstance(op, GeoDelete):
        return {"kind": "delete", "object_id": op.object_id}
    to_dict = getattr(op, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return geometry_op_to_dict(op)


def object_ids(op: Any) -> set[str] | None:
    """Ids an op reads; ``None`` when it needs every object of the image."""
    if isinstance(op, Sourced):
        inner = object_ids(op.op) if op.op is not None else set()
        return None if inner is None else inner | set(op.sources)
    if isinstance(op, PlainCreates):
        return set(op.ids())
    kind = getattr(op, "kind", None)
    if kind == "rasterize_all":
        return None
    if kind == "batch":
        ids: set[str] = set()
        for sub in op.ops:
            sub_ids = object_ids(sub)
            if sub_ids is None:
                return None
            ids |= sub_ids
        return ids
    if kind == "create":
        return {op.object.id}
    return {op.object_id}
