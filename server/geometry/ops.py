"""Edit operations as data: ``{"kind": ..., ...}`` models and ``parse_op``.

Vertex addresses are ``part`` (index into ``parts``; 0 for a polyline), ``hole`` (null for the
exterior or a polyline, else the hole index) and ``index`` (vertex index in that ring).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

from .errors import GeometryError, from_validation_error
from .shapes import GEOMETRY_MODELS, Coord, Keypoint, LabelObject, ObjectType, Ring, Rpy
from .validation import parse_object

Index = Annotated[int, Field(ge=0, le=10_000_000)]
ObjectId = Annotated[str, Field(min_length=1, max_length=64)]


class _Op(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _object_field(cls: Any, value: Any) -> LabelObject:
    return parse_object(value, "op.object")


def _dump_object(self: Any, value: LabelObject) -> dict[str, Any]:
    return value.model_dump(mode="json")


class _ObjectOp(_Op):
    object_id: ObjectId


class Create(_Op):
    kind: Literal["create"] = "create"
    object: LabelObject

    # GeometryError is not a ValueError, so it passes through pydantic with its own field path.
    _parse = field_validator("object", mode="plain")(_object_field)
    _dump = field_serializer("object")(_dump_object)


class Delete(_ObjectOp):
    kind: Literal["delete"] = "delete"


class Replace(_ObjectOp):
    """Replace the whole object (its id must stay ``object_id``)."""

    kind: Literal["replace"] = "replace"
    object: LabelObject

    _parse = field_validator("object", mode="plain")(_object_field)
    _dump = field_serializer("object")(_dump_object)


class ReplaceGeometry(_ObjectOp):
    """New geometry; with ``type`` the object also changes type (keypoints/rpy dropped if unfit)."""

    kind: Literal["replace_geometry"] = "replace_geometry"
    geometry: Any
    type: ObjectType | None = None

    @field_validator("geometry", mode="plain")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, dict) or isinstance(value, tuple(GEOMETRY_MODELS.values())):
            return value
        raise ValueError("must be a JSON object")

    @field_serializer("geometry")
    def _dump_geometry(self, value: Any) -> Any:
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


class MoveBox(_ObjectOp):
    kind: Literal["move_box"] = "move_box"
    x: Coord
    y: Coord
    w: Coord
    h: Coord


class Translate(_ObjectOp):
    kind: Literal["translate"] = "translate"
    dx: Coord
    dy: Coord


class _VertexOp(_ObjectOp):
    part: Index = 0
    hole: Index | None = None
    index: Index


class MoveVertex(_VertexOp):
    kind: Literal["move_vertex"] = "move_vertex"
    x: Coord
    y: Coord


class InsertVertex(_VertexOp):
    """Insert a vertex so that it gets ``index`` (``index == len`` appends)."""

    kind: Literal["insert_vertex"] = "insert_vertex"
    x: Coord
    y: Coord


class RemoveVertex(_VertexOp):
    kind: Literal["remove_vertex"] = "remove_vertex"


class AddPart(_ObjectOp):
    """Add a part to a polygon group, at ``index`` (default: append)."""

    kind: Literal["add_part"] = "add_part"
    exterior: Ring
    holes: list[Ring] = Field(default_factory=list)
    index: Index | None = None


class AddHole(_ObjectOp):
    kind: Literal["add_hole"] = "add_hole"
    part: Index = 0
    ring: Ring
    index: Index | None = None


class RemovePart(_ObjectOp):
    kind: Literal["remove_part"] = "remove_part"
    part: Index


class RemoveHole(_ObjectOp):
    kind: Literal["remove_hole"] = "remove_hole"
    part: Index = 0
    hole: Index


class SetLabel(_ObjectOp):
    kind: Literal["set_label"] = "set_label"
    label: str


class SetAttributes(_ObjectOp):
    """Replace all attributes."""

    kind: Literal["set_attributes"] = "set_attributes"
    attributes: dict[str, str | int | float | bool]


class SetKeypoint(_ObjectOp):
    """Set (or move) the keypoint with this name; a new one goes to ``index`` (default: end)."""

    kind: Literal["set_keypoint"] = "set_keypoint"
    keypoint: Keypoint
    index: Index | None = None


class RemoveKeypoint(_ObjectOp):
    kind: Literal["remove_keypoint"] = "remove_keypoint"
    name: str


class SetRpy(_ObjectOp):
    kind: Literal["set_rpy"] = "set_rpy"
    rpy: Rpy | None


class SetOccluded(_ObjectOp):
    kind: Literal["set_occluded"] = "set_occluded"
    occluded: bool


class SetZ(_ObjectOp):
    kind: Literal["set_z"] = "set_z"
    z: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class Brush(_ObjectOp):
    """Paint (or erase) every pixel whose center is within ``radius`` of the stroke."""

    kind: Literal["brush"] = "brush"
    mode: Literal["draw", "erase"] = "draw"
    points: Ring
    radius: Annotated[float, Field(gt=0, le=10_000)]


class Fill(_ObjectOp):
    """Flood-fill the background region (4-connected) around pixel ``(x, y)``."""

    kind: Literal["fill"] = "fill"
    x: Coord
    y: Coord


class Rasterize(_ObjectOp):
    kind: Literal["rasterize"] = "rasterize"


class RasterizeAll(_Op):
    kind: Literal["rasterize_all"] = "rasterize_all"


class Vectorize(_ObjectOp):
    """Bitmap to polygon: exact pixel outline, or simplified (null = the policy decides)."""

    kind: Literal["vectorize"] = "vectorize"
    simplify: bool | None = None


class Batch(_Op):
    """Several ops applied in order as one edit (one undo step)."""

    kind: Literal["batch"] = "batch"
    ops: list[Op]

    @field_validator("ops", mode="plain")
    @classmethod
    def _parse_ops(cls, value: Any) -> list[Op]:
        if not isinstance(value, list):
            raise ValueError("must be a list of ops")
        if len(value) > 100_000:
            raise ValueError("too many ops")
        out = []
        for i, item in enumerate(value):
            if (isinstance(item, dict) and item.get("kind") == "batch") or isinstance(item, Batch):
                raise ValueError(f"{i}: batches cannot nest")
            try:
                out.append(parse_op(item))
            except GeometryError as exc:
                field = f"op.ops.{i}.{exc.field.removeprefix('op').lstrip('.')}".rstrip(".")
                raise GeometryError(field, exc.message) from None
        return out

    @field_serializer("ops")
    def _dump_ops(self, ops: list[Op]) -> list[dict[str, Any]]:
        return [op_to_dict(op) for op in ops]


Op = Annotated[
    Create
    | Delete
    | Replace
    | ReplaceGeometry
    | MoveBox
    | Translate
    | MoveVertex
    | InsertVertex
    | RemoveVertex
    | AddPart
    | AddHole
    | RemovePart
    | RemoveHole
    | SetLabel
    | SetAttributes
    | SetKeypoint
    | RemoveKeypoint
    | SetRpy
    | SetOccluded
    | SetZ
    | Brush
    | Fill
    | Rasterize
    | RasterizeAll
    | Vectorize
    | Batch,
    Field(discriminator="kind"),
]

OP_MODELS: dict[str, type[_Op]] = {
    m.model_fields["kind"].default: m
    for m in (
        Create, Delete, Replace, ReplaceGeometry, MoveBox, Translate, MoveVertex, InsertVertex,
        RemoveVertex, AddPart, AddHole, RemovePart, RemoveHole, SetLabel, SetAttributes,
        SetKeypoint, RemoveKeypoint, SetRpy, SetOccluded, SetZ, Brush, Fill, Rasterize,
        RasterizeAll, Vectorize, Batch,
    )
}  # fmt: skip

Batch.model_rebuild()


def parse_op(data: Any, field: str = "op") -> Any:
    """An op model from untrusted JSON (raises GeometryError naming the field)."""
    if isinstance(data, tuple(OP_MODELS.values())):
        return data
    if not isinstance(data, dict):
        raise GeometryError(field, "must be a JSON object")
    kind = data.get("kind")
    model = OP_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise GeometryError(f"{field}.kind", f"unknown op kind {kind!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, field) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise GeometryError(field, str(exc) or "invalid value") from None


def op_to_dict(op: Any) -> dict[str, Any]:
    """JSON-able form of an op (round-trips through ``parse_op``)."""
    return op.model_dump(mode="json")
