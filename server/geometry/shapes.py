"""Label objects and their geometries as pydantic models: the wire format.

Coordinates are floats in image pixels with pixel *corners* on integers: pixel (row i, column j)
covers ``[j, j + 1] x [i, i + 1]``.  Vertex lists are held as read-only ``(n, 2)`` float arrays
(``Ring``) so edits on huge polygons stay cheap; they serialize as ``[[x, y], ...]``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    model_validator,
)
from pydantic_core import core_schema

from .errors import GeometryError
from .rle import rle_counts

#: Coordinates beyond this magnitude are rejected outright (even when off-image is allowed).
COORD_LIMIT = 1e7

ObjectType = Literal["bbox", "polygon", "polyline", "point", "bitmap", "rpy"]
OBJECT_TYPES: tuple[str, ...] = ("bbox", "polygon", "polyline", "point", "bitmap", "rpy")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    if abs(value) > COORD_LIMIT:
        raise ValueError(f"must be within +-{COORD_LIMIT:g}")
    return value


Coord = Annotated[float, AfterValidator(_finite)]


def _finite_angle(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Angle = Annotated[float, AfterValidator(_finite_angle)]


_NUMBER = (int, float, np.integer, np.floating)


class Ring:
    """An immutable list of ``[x, y]`` vertices (a ring is implicitly closed)."""

    __slots__ = ("array",)
    array: npt.NDArray[np.float64]

    def __init__(self, points: Any) -> None:
        arr = np.array(points, dtype=np.float64).reshape(-1, 2)
        arr.flags.writeable = False
        self.array = arr

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return self.array.shape == other.array.shape and bool(
            np.array_equal(self.array, other.array)
        )

    def __hash__(self) -> int:
        return hash(self.array.tobytes())

    def __repr__(self) -> str:
        return f"Ring({self.tolist()!r})"

    def tolist(self) -> list[list[float]]:
        return self.array.tolist()

    def replace(self, index: int, x: float, y: float) -> Ring:
        arr = self.array.copy()
        arr[index] = (x, y)
        return Ring._wrap(arr)

    def insert(self, index: int, x: float, y: float) -> Ring:
        return Ring._wrap(np.insert(self.array, index, (x, y), axis=0))

    def delete(self, index: int) -> Ring:
        return Ring._wrap(np.delete(self.array, index, axis=0))

    @classmethod
    def _wrap(cls, arr: npt.NDArray[np.float64]) -> Ring:
        ring = cls.__new__(cls)
        arr.flags.writeable = False
        ring.array = arr
        return ring

    @classmethod
    def parse(cls, value: Any) -> Ring:
        if isinstance(value, Ring):
            return value
        if isinstance(value, np.ndarray):
            if value.ndim != 2 or value.shape[1:] != (2,) or value.dtype.kind not in "iuf":
                raise ValueError("must be an (n, 2) array of numbers")
            arr = value.astype(np.float64)
        else:
            if not isinstance(value, list | tuple):
                raise ValueError("must be a list of [x, y] points")
            for i, p in enumerate(value):
                if not isinstance(p, list | tuple) or len(p) != 2:
                    raise ValueError(f"point {i} must be [x, y]")
                for v in p:
                    if isinstance(v, bool | np.bool_) or not isinstance(v, _NUMBER):
                        raise ValueError(f"point {i} must hold two numbers")
            try:
                arr = np.array(value, dtype=np.float64).reshape(-1, 2)
            except OverflowError:
                raise ValueError("has a number that is too large") from None
        if arr.size:
            if not np.isfinite(arr).all():
                raise ValueError("has a coordinate that is not finite")
            if np.abs(arr).max() > COORD_LIMIT:
                raise ValueError(f"has a coordinate beyond +-{COORD_LIMIT:g}")
        return cls._wrap(np.ascontiguousarray(arr))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda r: r.tolist()),
        )


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class BBoxGeometry(_Model):
    x: Coord
    y: Coord
    w: Coord
    h: Coord


class PolygonPart(_Model):
    exterior: Ring
    holes: list[Ring] = Field(default_factory=list)


class PolygonGeometry(_Model):
    parts: list[PolygonPart]

    @property
    def vertex_count(self) -> int:
        return sum(len(p.exterior) + sum(len(h) for h in p.holes) for p in self.parts)


class PolylineGeometry(_Model):
    points: Ring

    @property
    def vertex_count(self) -> int:
        return len(self.points)


class PointGeometry(_Model):
    x: Coord
    y: Coord


class RLE(_Model):
    size: list[int]
    counts: str

    @model_validator(mode="after")
    def _consistent(self) -> RLE:
        try:
            rle_counts({"size": self.size, "counts": self.counts}, "")
        except GeometryError as exc:
            raise ValueError(f"{exc.field.lstrip('.')}: {exc.message}") from None
        return self


class BitmapGeometry(_Model):
    rle: RLE


class Rpy(_Model):
    """Roll, pitch and yaw in degrees."""

    roll: Angle
    pitch: Angle
    yaw: Angle


RpyGeometry = Rpy

Geometry = BBoxGeometry | PolygonGeometry | PolylineGeometry | PointGeometry | BitmapGeometry | Rpy

GEOMETRY_MODELS: dict[str, type[_Model]] = {
    "bbox": BBoxGeometry,
    "polygon": PolygonGeometry,
    "polyline": PolylineGeometry,
    "point": PointGeometry,
    "bitmap": BitmapGeometry,
    "rpy": Rpy,
}

#: Object types that may carry keypoints and an rpy.
DECORATED_TYPES = frozenset({"bbox", "polygon"})


class Keypoint(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    x: Coord
    y: Coord
    visible: bool = True


AttributeValue = str | int | float | bool


class LabelObject(_Model):
    """One label on one image."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    type: ObjectType
    label: str = ""
    geometry: Geometry
    keypoints: list[Keypoint] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    rpy: Rpy | None = None
    occluded: bool = False
    z: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] = 0

    @model_validator(mode="before")
    @classmethod
    def _geometry_by_type(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kind, geometry = data.get("type"), data.get("geometry")
            model = GEOMETRY_MODELS.get(kind) if isinstance(kind, str) else None
            if model is not None and isinstance(geometry, dict):
                data = {**data, "geometry": model.model_validate(geometry)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> LabelObject:
        model = GEOMETRY_MODELS[self.type]
        if type(self.geometry) is not model:
            raise ValueError(f"geometry of a {self.type} must be a {model.__name__}")
        if self.type not in DECORATED_TYPES and (self.keypoints or self.rpy is not None):
            raise ValueError(f"a {self.type} cannot carry keypoints or rpy")
        for value in self.attributes.values():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("attribute values must be finite")
        return self
