"""What an edit costs to apply, estimated before it runs.

The unit is one pixel test of the brush loop (about 10 ns on the reference 2-core VM); the other
steps are weighted to match what they were measured to take (docs/performance.md, "CPU work"):
a bitmap's full-image decode and re-encode ~ ``W*H/8``, a flood fill ``W*H/4``, rasterizing a
shape ``2 x`` its clipped bounding box plus the re-encode, vectorizing ``2*W*H``; a brush stroke
tests every pixel of every segment's bounding box (``server/geometry/_bitmap_ops.py``), so its
cost is the sum of those boxes. Shape edits cost ``VERTEX_COST`` per vertex they read or write
(validation and topology checks).

The hub and the REST routes use it twice: an op over :attr:`Policy.max_op_cost` is refused
before any work (:class:`TooCostly`), and an op over ``INLINE_COST`` runs in the worker pool
(``server/offload.py``) instead of on the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import ops as o
from .errors import GeometryError
from .plain import PlainCreates
from .shapes import (
    BBoxGeometry,
    BitmapGeometry,
    LabelObject,
    PolygonGeometry,
    PolylineGeometry,
)

__all__ = ["INLINE_COST", "TooCostly", "brush_cost", "check_cost", "max_op_cost", "op_cost"]

#: Ops cheaper than this run inline on the caller's thread (about 2 ms of work).
INLINE_COST = 200_000
#: Cost per vertex of a shape an op reads or writes.
VERTEX_COST = 10
#: An op may cost this many units per image pixel ...
COST_PER_PIXEL = 4
#: ... but at least this much (small images still allow a generous stroke).
MIN_OP_COST = 64_000_000


class TooCostly(GeometryError):
    """An op whose estimated cost is over the image's limit (wire code ``too_costly``)."""


def max_op_cost(width: int, height: int) -> int:
    """The most one op may cost on a ``width`` x ``height`` image."""
    return max(COST_PER_PIXEL * width * height, MIN_OP_COST)


def _vertices(obj: LabelObject | None) -> int:
    if obj is None:
        return 0
    g = obj.geometry
    n = len(obj.keypoints) + 1
    if isinstance(g, PolygonGeometry):
        n += sum(len(p.exterior) + sum(len(h) for h in p.holes) for p in g.parts)
    elif isinstance(g, PolylineGeometry):
        n += len(g.points)
    return n


def _clipped_box(obj: LabelObject, width: int, height: int) -> int:
    """Pixels of the image under the object's bounding box."""
    g = obj.geometry
    if isinstance(g, BBoxGeometry):
        x0, y0, x1, y1 = g.x, g.y, g.x + g.w, g.y + g.h
    elif isinstance(g, PolygonGeometry):
        arr = np.concatenate([p.exterior.array for p in g.parts])
        (x0, y0), (x1, y1) = arr.min(axis=0), arr.max(axis=0)
    else:
        return width * height
    w = min(math.ceil(x1), width) - max(math.floor(x0), 0)
    h = min(math.ceil(y1), height) - max(math.floor(y0), 0)
    return max(w, 0) * max(h, 0)


def brush_cost(points: Any, radius: float, width: int, height: int) -> int:
    """Pixel tests of a brush stroke: the sum of its segments' bounding boxes, clipped to the
    image, exactly as ``_bitmap_ops.brush`` visits them."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return 0
    a, b = (pts, pts) if len(pts) == 1 else (pts[:-1], pts[1:])
    x0 = np.clip(np.floor(np.minimum(a[:, 0], b[:, 0]) - radius - 0.5), 0, width)
    x1 = np.clip(np.ceil(np.maximum(a[:, 0], b[:, 0]) + radius + 0.5), 0, width)
    y0 = np.clip(np.floor(np.minimum(a[:, 1], b[:, 1]) - radius - 0.5), 0, height)
    y1 = np.clip(np.ceil(np.maximum(a[:, 1], b[:, 1]) + radius + 0.5), 0, height)
    return int((np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)).sum())


def _step_cost(op: Any, objects: Mapping[str, LabelObject], width: int, height: int) -> int:
    pixels = width * height
    if isinstance(op, o.RasterizeAll):
        return sum(2 * _clipped_box(obj, width, height) + pixels // 8
                   for obj in objects.values() if obj.type in ("bbox", "polygon"))
    if isinstance(op, o.Create):
        own = op.object
        return VERTEX_COST * _vertices(own) + (pixels // 8 if own.type == "bitmap" else 0)
    cur = objects.get(op.object_id)
    base = VERTEX_COST * _vertices(cur)
    if isinstance(op, o.Brush):
        return base + pixels // 8 + brush_cost(op.points.array, op.radius, width, height)
    if isinstance(op, o.Fill):
        return base + pixels // 8 + pixels // 4
    if isinstance(op, o.Rasterize):
        box = _clipped_box(cur, width, height) if cur is not None else 0
        return base + 2 * box + pixels // 8
    if isinstance(op, o.Vectorize):
        return base + 2 * pixels
    if isinstance(op, o.Replace):
        new = op.object
        bitmap = isinstance(new.geometry, BitmapGeometry)
        return base + VERTEX_COST * _vertices(new) + (pixels // 8 if bitmap else 0)
    if isinstance(op, o.ReplaceGeometry | o.AddPart | o.AddHole):
        extra = 0
        if isinstance(op, o.AddPart):
            extra = len(op.exterior) + sum(len(h) for h in op.holes)
        elif isinstance(op, o.AddHole):
            extra = len(op.ring)
        elif isinstance(op.geometry, dict) and "rle" in op.geometry:
            extra = pixels // 8 // VERTEX_COST
        else:
            extra = len(str(op.geometry)) // 8  # an upper bound of its numbers, unparsed
        return base + VERTEX_COST * extra
    return base


def op_cost(op: Any, objects: Mapping[str, LabelObject], width: int, height: int) -> int:
    """Estimated cost of applying the parsed ``op`` to ``objects`` (those it reads, by id) on a
    ``width`` x ``height`` image; a batch costs the sum of its ops."""
    if isinstance(op, PlainCreates):  # plain objects: one vertex each (no keypoints)
        return VERTEX_COST * len(op.objects)
    if isinstance(op, o.Batch):
        return sum(_step_cost(sub, objects, width, height) for sub in op.ops)
    return _step_cost(op, objects, width, height)


def check_cost(cost: int, width: int, height: int) -> None:
    """Raise :class:`TooCostly` when ``cost`` is over the image's limit."""
    limit = max_op_cost(width, height)
    if cost > limit:
        raise TooCostly("op", f"this op would cost about {cost:,} pixel steps; an op on a "
                              f"{width}x{height} image may cost at most {limit:,} (split it "
                              "into smaller strokes or fewer objects per op)")
