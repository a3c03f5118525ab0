"""Moving, inserting and removing single vertices - fast on huge polygons.

The whole part is re-validated with shapely only when a cheap local test (the new edges against
all edges of the part, plus a check that no ring was swallowed by the moved corner) cannot
prove the edit keeps the part valid.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops as o
from .errors import GeometryError
from .policy import Policy
from .shapes import LabelObject, PolygonGeometry, PolygonPart, PolylineGeometry, Ring
from .topology import check_part, check_polyline, locally_valid


def part_at(obj: LabelObject, part: int) -> PolygonPart:
    g = obj.geometry
    if not isinstance(g, PolygonGeometry):
        raise GeometryError("op.kind", f"a part edit does not apply to a {obj.type}")
    if part >= len(g.parts):
        raise GeometryError("op.part", f"no part {part}")
    return g.parts[part]


def ring_at(obj: LabelObject, op: Any) -> Ring:
    """The ring (or polyline) addressed by ``op.part`` / ``op.hole``."""
    g = obj.geometry
    if isinstance(g, PolylineGeometry):
        if op.part != 0 or op.hole is not None:
            raise GeometryError("op.part", "a polyline has one part (0) and no holes")
        return g.points
    if not isinstance(g, PolygonGeometry):
        raise GeometryError("op.kind", f"vertex edits do not apply to a {obj.type}")
    part = part_at(obj, op.part)
    if op.hole is None:
        return part.exterior
    if op.hole >= len(part.holes):
        raise GeometryError("op.hole", f"no hole {op.hole}")
    return part.holes[op.hole]


def _place(x: float, y: float, policy: Policy | None) -> tuple[float, float]:
    """The vertex position allowed by the policy (clamped when fitting to the image)."""
    if policy is None or (policy.allow_outside and not policy.fit_to_image):
        return x, y
    w, h = policy.image_width, policy.image_height
    if 0 <= x <= w and 0 <= y <= h:
        return x, y
    if policy.fit_to_image:
        return min(max(x, 0.0), float(w)), min(max(y, 0.0), float(h))
    raise GeometryError("op.x", "vertex lies outside the image")


def edit_vertex(obj: LabelObject, op: Any, policy: Policy | None) -> LabelObject:
    ring = ring_at(obj, op)
    n = len(ring)
    arr = ring.array
    field = "object.geometry.points"
    if isinstance(op, o.MoveVertex):
        if op.index >= n:
            raise GeometryError("op.index", f"no vertex {op.index} (ring has {n})")
        x, y = _place(op.x, op.y, policy)
        new_ring = ring.replace(op.index, x, y)
        q = np.array([x, y])
        prev, old, nxt = arr[(op.index - 1) % n], arr[op.index], arr[(op.index + 1) % n]
        swept = [np.array([prev, old, q]), np.array([old, nxt, q])]
        vertex, new_edges = op.index, 2
    elif isinstance(op, o.InsertVertex):
        if op.index > n:
            raise GeometryError("op.index", f"must be <= {n}")
        if policy is not None and _vertex_count(obj) + 1 > policy.max_vertices:
            raise GeometryError("op", f"more than {policy.max_vertices} vertices")
        x, y = _place(op.x, op.y, policy)
        new_ring = ring.insert(op.index, x, y)
        q = np.array([x, y])
        swept = [np.array([arr[(op.index - 1) % n], arr[op.index % n], q])]
        vertex, new_edges = op.index, 2
    else:
        if op.index >= n:
            raise GeometryError("op.index", f"no vertex {op.index} (ring has {n})")
        minimum = 2 if isinstance(obj.geometry, PolylineGeometry) else 3
        if n <= minimum:
            raise GeometryError("op.index", f"a ring keeps at least {minimum} vertices")
        new_ring = ring.delete(op.index)
        swept = [np.array([arr[(op.index - 1) % n], arr[op.index], arr[(op.index + 1) % n]])]
        vertex, new_edges = op.index, 1
    g = obj.geometry
    if isinstance(g, PolylineGeometry):
        check_polyline(new_ring, field)
        return obj.model_copy(update={"geometry": PolylineGeometry(points=new_ring)})
    assert isinstance(g, PolygonGeometry)
    part = g.parts[op.part]
    if op.hole is None:
        new_part = PolygonPart(exterior=new_ring, holes=part.holes)
    else:
        holes = list(part.holes)
        holes[op.hole] = new_ring
        new_part = PolygonPart(exterior=part.exterior, holes=holes)
    ring_index = -1 if op.hole is None else op.hole
    if not locally_valid(new_part, ring_index, vertex % len(new_ring), swept, new_edges):
        check_part(new_part, f"object.geometry.parts.{op.part}")
    parts = list(g.parts)
    parts[op.part] = new_part
    return obj.model_copy(update={"geometry": PolygonGeometry(parts=parts)})


def _vertex_count(obj: LabelObject) -> int:
    g = obj.geometry
    return g.vertex_count if isinstance(g, PolygonGeometry | PolylineGeometry) else 0
