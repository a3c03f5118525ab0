"""Ring and part validity: full checks with shapely, fast local checks for vertex edits.

Rules: a ring has at least 3 distinct vertices, a non-zero area and does not cross or touch
itself; a hole lies inside its part's exterior; holes of one part do not overlap (they may touch
at single points, as in OGC simple features); parts of one polygon group MAY overlap each other
- the object's area is the union of its parts.  A polyline has at least 2 distinct points and
may cross itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from .errors import GeometryError
from .shapes import PolygonGeometry, PolygonPart, Ring

Array = npt.NDArray[np.float64]


def ring_area(arr: Array) -> float:
    """Signed shoelace area (positive = counter-clockwise in x-right/y-up axes)."""
    x, y = arr[:, 0], arr[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def part_polygon(part: PolygonPart) -> shapely.Polygon:
    """The shapely polygon of one part."""
    return shapely.Polygon(part.exterior.array, [h.array for h in part.holes])


def check_ring(ring: Ring, field: str) -> None:
    arr = ring.array
    if len(np.unique(arr, axis=0)) < 3:
        raise GeometryError(field, "a ring needs at least 3 distinct vertices")
    if not shapely.is_simple(shapely.linearrings(arr)):
        raise GeometryError(field, "ring crosses or touches itself")
    if ring_area(arr) == 0.0:
        raise GeometryError(field, "ring has zero area")


def check_part(part: PolygonPart, field: str) -> None:
    check_ring(part.exterior, f"{field}.exterior")
    for k, hole in enumerate(part.holes):
        check_ring(hole, f"{field}.holes.{k}")
    shell = shapely.polygons(part.exterior.array)
    for k, hole in enumerate(part.holes):
        if not shapely.covers(shell, shapely.polygons(hole.array)):
            raise GeometryError(f"{field}.holes.{k}", "hole is not inside its part's exterior")
    if part.holes:
        poly = part_polygon(part)
        if not shapely.is_valid(poly):
            reason = shapely.is_valid_reason(poly)
            raise GeometryError(f"{field}.holes", f"holes overlap or cut the part ({reason})")


def check_polygon(geometry: PolygonGeometry, field: str) -> None:
    if not geometry.parts:
        raise GeometryError(f"{field}.parts", "a polygon needs at least one part")
    for i, part in enumerate(geometry.parts):
        check_part(part, f"{field}.parts.{i}")


def check_polyline(points: Ring, field: str) -> None:
    arr = points.array
    if len(arr) < 2 or not (arr != arr[0]).any():
        raise GeometryError(field, "a polyline needs at least 2 distinct points")


# --- local checks for single-vertex edits ---------------------------------------------------


def _orient(ax: Array, ay: Array, bx: Array, by: Array, cx: Array, cy: Array) -> Array:
    return np.sign((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))


def _touches(p0: Array, p1: Array, q0: Array, q1: Array) -> npt.NDArray[np.bool_]:
    """Closed-segment intersection of segment p0p1 (broadcast) with each segment q0[i]q1[i]."""
    o1 = _orient(p0[0], p0[1], p1[0], p1[1], q0[:, 0], q0[:, 1])
    o2 = _orient(p0[0], p0[1], p1[0], p1[1], q1[:, 0], q1[:, 1])
    o3 = _orient(q0[:, 0], q0[:, 1], q1[:, 0], q1[:, 1], p0[0], p0[1])
    o4 = _orient(q0[:, 0], q0[:, 1], q1[:, 0], q1[:, 1], p1[0], p1[1])
    proper = (o1 * o2 <= 0) & (o3 * o4 <= 0)
    # Collinear segments: the sign test passes, so also require overlapping extents.
    lo_x = np.minimum(q0[:, 0], q1[:, 0]) <= max(p0[0], p1[0])
    hi_x = np.maximum(q0[:, 0], q1[:, 0]) >= min(p0[0], p1[0])
    lo_y = np.minimum(q0[:, 1], q1[:, 1]) <= max(p0[1], p1[1])
    hi_y = np.maximum(q0[:, 1], q1[:, 1]) >= min(p0[1], p1[1])
    return proper & lo_x & hi_x & lo_y & hi_y


def _in_triangle(pts: Array, a: Array, b: Array, c: Array) -> npt.NDArray[np.bool_]:
    d1 = _orient(a[0], a[1], b[0], b[1], pts[:, 0], pts[:, 1])
    d2 = _orient(b[0], b[1], c[0], c[1], pts[:, 0], pts[:, 1])
    d3 = _orient(c[0], c[1], a[0], a[1], pts[:, 0], pts[:, 1])
    neg = (d1 < 0) | (d2 < 0) | (d3 < 0)
    pos = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return ~(neg & pos)


def locally_valid(
    part: PolygonPart, ring_index: int, vertex: int, swept: list[Array], new_edges: int
) -> bool:
    """True if an edit that changed only edges around ``vertex`` certainly left ``part`` valid.

    ``ring_index`` is -1 for the exterior, else the hole index; in the (already edited) ring the
    ``new_edges`` edges starting at ``vertex - 1`` (or at ``vertex - 1`` and ``vertex`` for 2) are
    the new ones; ``swept`` are triangles covering the area between the old and the new path.  The part
    was valid before.  Returns False whenever a full check is needed - never a false True.
    """
    rings = [part.exterior, *part.holes]
    ring = rings[ring_index + 1].array
    n = len(ring)
    if n < 3:
        return False
    # New edges: from vertex-1 to vertex (and vertex to vertex+1) for move/insert; one edge
    # (vertex-1 -> vertex) after a removal.
    starts = [(vertex - 1) % n] if new_edges == 1 else [(vertex - 1) % n, vertex % n]
    ends = [ring[s] for s in starts] + [ring[(s + 1) % n] for s in starts]
    lo, hi = np.min(ends, axis=0), np.max(ends, axis=0)
    for s in starts:
        if (ring[s] == ring[(s + 1) % n]).all() or _adjacent_overlap(ring, s):
            return False
    for r_i, other in enumerate(rings):
        q0 = other.array
        q1 = np.concatenate((q0[1:], q0[:1]))
        # Only edges whose bounding box meets the new edges' bounding box can touch them.
        near = np.flatnonzero(
            (np.minimum(q0[:, 0], q1[:, 0]) <= hi[0])
            & (np.maximum(q0[:, 0], q1[:, 0]) >= lo[0])
            & (np.minimum(q0[:, 1], q1[:, 1]) <= hi[1])
            & (np.maximum(q0[:, 1], q1[:, 1]) >= lo[1])
        )
        if near.size == 0:
            continue
        for s in starts:
            cand = near
            if r_i == ring_index + 1:
                # Edges sharing an endpoint with edge s may only meet it there (checked above).
                skip = {(s - 1) % n, s, (s + 1) % n}
                cand = np.array([i for i in near.tolist() if i not in skip], dtype=np.int64)
            if cand.size and _touches(ring[s], ring[(s + 1) % n], q0[cand], q1[cand]).any():
                return False
    # A ring lying wholly in the swept area would have changed sides without any crossing.
    firsts = np.array([r.array[0] for i, r in enumerate(rings) if i != ring_index + 1])
    for tri in swept:
        if firsts.size and _in_triangle(firsts, tri[0], tri[1], tri[2]).any():
            return False
    # A simple ring (no edge touches another but its neighbours at their shared vertex) with
    # no folded-back edges has a non-zero area.
    return True


def _adjacent_overlap(ring: Array, s: int) -> bool:
    """Edge s folds back onto (or touches the far end of) one of its neighbour edges."""
    n = len(ring)
    a, b = ring[s], ring[(s + 1) % n]
    prev_pt, next_pt = ring[(s - 1) % n], ring[(s + 2) % n]
    for p, q0, q1 in ((prev_pt, a, b), (next_pt, a, b)):
        if _on_segment(p, q0, q1):
            return True
    return _on_segment(b, prev_pt, a) or _on_segment(a, b, next_pt)


def _on_segment(p: Array, a: Array, b: Array) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    if cross != 0:
        return False
    inside_x = min(a[0], b[0]) <= p[0] <= max(a[0], b[0])
    inside_y = min(a[1], b[1]) <= p[1] <= max(a[1], b[1])
    return bool(inside_x and inside_y)
