"""Bitmap to polygon: the exact pixel outline (holes kept), optionally simplified.

The detailed outline runs along pixel edges (integer pixel-corner coordinates), so rasterizing
it gives back the very same mask.  Each 4-connected foreground component becomes one part;
where two components touch only at a pixel corner they become two parts, and a ring that would
touch itself at a corner is split there (into a part and a hole touching at one point, which is
valid in OGC simple features).  Exterior rings come out clockwise on screen (positive shoelace
area in y-down coordinates), holes counter-clockwise.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import shapely

from .errors import GeometryError
from .shapes import PolygonGeometry, PolygonPart, Ring
from .topology import part_polygon, ring_area

I64 = npt.NDArray[np.int64]


def _runs(edges: npt.NDArray[np.bool_]) -> tuple[I64, I64, I64]:
    """(line, first, last) of every run of True along axis 1."""
    rows, cols = edges.shape
    pad = np.zeros((rows, cols + 2), dtype=bool)
    pad[:, 1:-1] = edges
    starts = np.flatnonzero(pad[:, 1:-1] & ~pad[:, :-2])
    ends = np.flatnonzero(pad[:, 1:-1] & ~pad[:, 2:])
    line, first = np.divmod(starts, cols)
    return line, first, ends % cols


def _segments(mask: npt.NDArray[np.bool_]) -> tuple[I64, I64, I64, I64, I64]:
    """Maximal straight boundary segments (sx, sy, ex, ey, direction), foreground on the right.

    Directions in y-down image coordinates: 0 east, 1 south, 2 west, 3 north.
    """
    h, w = mask.shape
    p = np.zeros((h + 2, w + 2), dtype=bool)
    p[1:-1, 1:-1] = mask
    above, below = p[:-1, 1:-1], p[1:, 1:-1]  # horizontal edges: (h + 1) corner rows x w
    pt = np.ascontiguousarray(p.T)
    left, right = pt[:-1, 1:-1], pt[1:, 1:-1]  # vertical edges: (w + 1) corner columns x h
    out = []
    y, a, b = _runs(below & ~above)  # east
    out.append((a, y, b + 1, y, 0))
    y, a, b = _runs(above & ~below)  # west
    out.append((b + 1, y, a, y, 2))
    x, a, b = _runs(left & ~right)  # south
    out.append((x, a, x, b + 1, 1))
    x, a, b = _runs(right & ~left)  # north
    out.append((x, b + 1, x, a, 3))
    sx = np.concatenate([o[0] for o in out])
    sy = np.concatenate([o[1] for o in out])
    ex = np.concatenate([o[2] for o in out])
    ey = np.concatenate([o[3] for o in out])
    d = np.concatenate([np.full(len(o[0]), o[4], dtype=np.int64) for o in out])
    return sx, sy, ex, ey, d


def _successors(sx: I64, sy: I64, ex: I64, ey: I64, d: I64, w: int) -> I64:
    """Next segment of each; at a corner shared by two diagonal pixels, turn right."""
    sid = sy * (w + 1) + sx
    eid = ey * (w + 1) + ex
    order = np.argsort(sid, kind="stable")
    sorted_sid = sid[order]
    pos = np.searchsorted(sorted_sid, eid)
    first = order[pos]
    second_pos = np.minimum(pos + 1, len(order) - 1)
    two = sorted_sid[second_pos] == eid
    two &= second_pos != pos
    second = order[second_pos]
    want = (d + 1) % 4
    pick_second = two & (d[first] != want)
    return np.where(pick_second, second, first)


def _cycles(nxt: I64) -> tuple[I64, I64]:
    """Segment order grouped by cycle (pointer doubling) and the cycle label of each slot."""
    n = len(nxt)
    lab = np.arange(n, dtype=np.int64)
    p = nxt.copy()
    steps = max(1, int(np.ceil(np.log2(max(n, 2)))) + 1)
    for _ in range(steps):
        lab = np.minimum(lab, lab[p])
        p = p[p]
    # Break every cycle before its leader and rank by distance to the break.
    tail = nxt == lab
    q = np.where(tail, np.arange(n), nxt)
    dist = np.where(tail, 0, 1).astype(np.int64)
    for _ in range(steps):
        dist = dist + dist[q]
        q = q[q]
    order = np.lexsort((-dist, lab))
    return order, lab[order]


def _split_pinches(seq: list[int], vid: I64) -> list[list[int]]:
    """Split a closed segment sequence wherever it passes the same vertex twice."""
    loops: list[list[int]] = []
    stack: list[int] = []
    seen: dict[int, int] = {}
    for s in seq:
        v = int(vid[s])
        if v in seen:
            k = seen[v]
            loops.append(stack[k:])
            for t in stack[k:]:
                seen.pop(int(vid[t]), None)
            del stack[k:]
        seen[v] = len(stack)
        stack.append(s)
    if stack:
        loops.append(stack)
    return loops


def _trace(mask: npt.NDArray[np.bool_]) -> list[tuple[npt.NDArray[np.float64], int]]:
    """Simple boundary loops as (vertices, component label)."""
    h, w = mask.shape
    sx, sy, ex, ey, d = _segments(mask)
    if len(sx) == 0:
        return []
    nxt = _successors(sx, sy, ex, ey, d, w)
    order, labels = _cycles(nxt)
    vid = sy * (w + 1) + sx
    indeg = np.bincount(ey * (w + 1) + ex, minlength=(h + 1) * (w + 1))
    pinch = indeg[vid] > 1
    _, comp = cv2.connectedComponents(mask.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    # Foreground pixel right of each segment's first unit edge (per direction E, S, W, N).
    fr = np.choose(d, [sy, sy, sy - 1, sy - 1])
    fc = np.choose(d, [sx, sx - 1, sx - 1, sx])
    comp_of = comp[fr, fc]
    bounds = np.flatnonzero(np.diff(labels)) + 1
    loops: list[tuple[npt.NDArray[np.float64], int]] = []
    for seq in np.split(order, bounds):
        pieces = _split_pinches(seq.tolist(), vid) if pinch[seq].any() else [seq]
        for piece in pieces:
            idx = np.asarray(piece)
            pts = np.stack((sx[idx], sy[idx]), axis=1).astype(np.float64)
            loops.append((pts, int(comp_of[idx[0]])))
    return loops


def _simplify_part(part: PolygonPart, tolerance: float) -> PolygonPart:
    """Douglas-Peucker (cv2.approxPolyDP) per ring; the exact part if the result is not good."""
    rings = []
    for ring in (part.exterior, *part.holes):
        approx = cv2.approxPolyDP(ring.array.astype(np.float32), tolerance, True)
        rings.append(approx.reshape(-1, 2).astype(np.float64))
    if any(len(r) < 3 or ring_area(r) == 0.0 for r in rings):
        return part
    simple = shapely.Polygon(rings[0], rings[1:])
    exact = part_polygon(part)
    if not shapely.is_valid(simple):
        return part
    if shapely.symmetric_difference(simple, exact).area > 0.03 * exact.area:
        return part
    return PolygonPart(exterior=Ring(rings[0]), holes=[Ring(r) for r in rings[1:]])


def vectorize(mask: npt.ArrayLike, tolerance: float = 0.0) -> PolygonGeometry:
    """Polygon geometry of a mask; ``tolerance`` > 0 simplifies (Douglas-Peucker, pixels)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise GeometryError("mask", "must be 2-D")
    m = np.ascontiguousarray(arr != 0) if arr.dtype != np.bool_ else np.ascontiguousarray(arr)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        raise GeometryError("mask", "is empty: nothing to vectorize")
    cols = np.flatnonzero(m.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    crop = np.ascontiguousarray(m[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1])
    exteriors: dict[int, npt.NDArray[np.float64]] = {}
    holes: dict[int, list[npt.NDArray[np.float64]]] = {}
    for pts, comp in _trace(crop):
        pts += (c0, r0)
        if ring_area(pts) > 0:
            exteriors[comp] = pts
        else:
            holes.setdefault(comp, []).append(pts)
    parts = [
        PolygonPart(exterior=Ring(ext), holes=[Ring(h) for h in holes.get(comp, [])])
        for comp, ext in sorted(exteriors.items())
    ]
    if tolerance > 0:
        parts = [_simplify_part(p, tolerance) for p in parts]
    return PolygonGeometry(parts=parts)
