"""Geometry core: label shapes, validation, edit ops with exact undo, COCO RLE, raster/vector
conversion and smart selection.  Pure: no asyncio, web or database code.
"""

from __future__ import annotations

from typing import Any

from .cost import TooCostly, op_cost
from .edits import EditResult, edit
from .errors import GeometryError
from .ops import (
    AddHole,
    AddPart,
    Batch,
    Brush,
    Create,
    Delete,
    Fill,
    InsertVertex,
    MoveBox,
    MoveVertex,
    Op,
    Rasterize,
    RasterizeAll,
    RemoveHole,
    RemoveKeypoint,
    RemovePart,
    RemoveVertex,
    Replace,
    ReplaceGeometry,
    SetAttributes,
    SetKeypoint,
    SetLabel,
    SetOccluded,
    SetRpy,
    SetZ,
    Translate,
    Vectorize,
    op_to_dict,
    parse_op,
)
from .policy import Policy
from .raster import rasterize
from .rle import rle_area, rle_bbox, rle_decode, rle_encode, rle_iou
from .shapes import (
    RLE,
    BBoxGeometry,
    BitmapGeometry,
    Keypoint,
    LabelObject,
    PointGeometry,
    PolygonGeometry,
    PolygonPart,
    PolylineGeometry,
    Ring,
    Rpy,
    RpyGeometry,
)
from .smart import smart_select
from .transforms import apply, invert
from .validation import parse_object, validate
from .vectorize import vectorize


def object_to_dict(obj: LabelObject) -> dict[str, Any]:
    """JSON-able, stable form of an object (every field present; round-trips via parse_object)."""
    return obj.model_dump(mode="json")


__all__ = [
    "RLE",
    "AddHole",
    "AddPart",
    "BBoxGeometry",
    "Batch",
    "BitmapGeometry",
    "Brush",
    "Create",
    "Delete",
    "EditResult",
    "Fill",
    "GeometryError",
    "InsertVertex",
    "Keypoint",
    "LabelObject",
    "MoveBox",
    "MoveVertex",
    "Op",
    "PointGeometry",
    "Policy",
    "PolygonGeometry",
    "PolygonPart",
    "PolylineGeometry",
    "Rasterize",
    "RasterizeAll",
    "RemoveHole",
    "RemoveKeypoint",
    "RemovePart",
    "RemoveVertex",
    "Replace",
    "ReplaceGeometry",
    "Ring",
    "Rpy",
    "RpyGeometry",
    "SetAttributes",
    "SetKeypoint",
    "SetLabel",
    "SetOccluded",
    "SetRpy",
    "SetZ",
    "TooCostly",
    "Translate",
    "Vectorize",
    "apply",
    "edit",
    "invert",
    "object_to_dict",
    "op_cost",
    "op_to_dict",
    "parse_object",
    "parse_op",
    "rasterize",
    "rle_area",
    "rle_bbox",
    "rle_decode",
    "rle_encode",
    "rle_iou",
    "smart_select",
    "validate",
    "vectorize",
]
