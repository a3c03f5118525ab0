"""Bitmap to polygon: the exact pixel outline (holes kept), optionally simplified.

The detailed outline runs along pixel edges (integer pixel-corner coordinates), so rasterizing
it gives back the very same mask.  Each 4-connected foreground component becomes one part;
where two components touch only at a pixel corner they become two parts, and a ring that would
touch itself at a corner is split there (into a part and a hole touching at one point, which is
valid in OGC simple features).  Exterior rings come out clockwise on screen (positive shoelace
area in y-down coordinates), holes counter-clockwise.  OpenCV traces the loops
(``_pixel_loops``); here they are split at their pinches and grouped into parts.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import shapely

from ._pixel_loops import trace
from .errors import GeometryError
from .shapes import PolygonGeometry, PolygonPart, Ring
from .topology import part_polygon, ring_area

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _split_pinches(seq: I64, vid: I64, pinch: npt.NDArray[np.bool_]) -> list[I64]:
    """Split a closed segment sequence wherever it passes the same vertex twice.

    Only pinch vertices can repeat, so the sequence is cut into blocks that each start at one
    (Python walks the few blocks, numpy holds the segments)."""
    cuts = np.flatnonzero(pinch[seq])
    blocks = np.split(seq, cuts[cuts > 0])
    loops: list[I64] = []
    stack: list[I64] = []
    seen: dict[int, int] = {}  # pinch vertex -> index of the block starting there
    for block in blocks:
        v = int(vid[block[0]])
        if v in seen and pinch[block[0]]:
            k = seen[v]
            loops.append(np.concatenate(stack[k:]))
            for t in stack[k:]:
                seen.pop(int(vid[t[0]]), None)
            del stack[k:]
        if pinch[block[0]]:
            seen[v] = len(stack)
        stack.append(block)
    if stack:
        loops.append(np.concatenate(stack))
    return loops


def _split_cycles(split: I64, start: I64, size: I64, vid: I64,
                  pinch: npt.NDArray[np.bool_]) -> tuple[I64, I64, I64]:
    """Segment order, loop sizes and the cycle of each loop once the ``split`` cycles (those
    with pinches) are cut into simple loops; the other cycles stay whole."""
    order: list[I64] = []
    sizes: list[I64] = []
    cycles: list[I64] = []
    done = 0
    for c in split.tolist():
        order.append(np.arange(start[done], start[c]))
        sizes.append(size[done:c])
        cycles.append(np.arange(done, c))
        loops = _split_pinches(np.arange(start[c], start[c] + size[c]), vid, pinch)
        order.extend(loops)
        sizes.append(np.fromiter((len(loop) for loop in loops), dtype=np.int64, count=len(loops)))
        cycles.append(np.full(len(loops), c))
        done = c + 1
    order.append(np.arange(start[done], start[-1] + size[-1]) if done < len(size) else start[:0])
    sizes.append(size[done:])
    cycles.append(np.arange(done, len(size)))
    return np.concatenate(order), np.concatenate(sizes), np.concatenate(cycles)


def _trace(mask: npt.NDArray[np.bool_], origin: tuple[int, int]) -> tuple[list[F64], I64, npt.NDArray[np.bool_]]:
    """Simple boundary loops (vertices moved by ``origin``), the part of each (the number of
    an exterior loop: its own if it is one, its component's if it is a hole) and which are
    exteriors; loops in cycle order, each cycle split at its pinches."""
    cyc = trace(mask)
    split = np.flatnonzero(np.add.reduceat(cyc.pinch, cyc.start, dtype=np.int64) > 1)
    if split.size:
        vid = cyc.sy * (mask.shape[1] + 1) + cyc.sx
        seq, size, of_cycle = _split_cycles(split, cyc.start, cyc.size, vid, cyc.pinch)
        px, py, cross = cyc.sx[seq], cyc.sy[seq], cyc.cross[seq]
    else:  # each cycle is one loop
        size, of_cycle, px, py, cross = cyc.size, np.arange(len(cyc.size)), cyc.sx, cyc.sy, cyc.cross
    start = np.cumsum(size) - size
    # Shoelace per loop from its segments, in integers (exact): > 0 exterior, < 0 hole.
    exterior = np.add.reduceat(cross, start) > 0
    # A component's cycle holds its one exterior loop; a hole's loop takes its cycle owner's.
    ext_of_cycle = np.zeros(len(cyc.size), dtype=np.int64)
    ext_of_cycle[of_cycle[exterior]] = np.flatnonzero(exterior)
    part = np.where(exterior, np.arange(len(size)), ext_of_cycle[cyc.owner[of_cycle]])
    pts = np.empty((len(px), 2), dtype=np.float64)
    pts[:, 0] = px + origin[0]
    pts[:, 1] = py + origin[1]
    return np.split(pts, start[1:]), part, exterior


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
    if m.size == 0:
        raise GeometryError("mask", "is empty: nothing to vectorize")
    # The foreground's bounding box (OpenCV: one pass); the crop stays a view, copied once
    # (inverted) for the trace.
    c0, r0, cw, ch = cv2.boundingRect(m.view(np.uint8))
    if cw == 0 or ch == 0:
        raise GeometryError("mask", "is empty: nothing to vectorize")
    loops, part, exterior = _trace(m[r0 : r0 + ch, c0 : c0 + cw], (c0, r0))
    holes: dict[int, list[Ring]] = {}
    for i in np.flatnonzero(~exterior).tolist():
        holes.setdefault(int(part[i]), []).append(Ring._wrap(loops[i]))
    parts = [
        PolygonPart(exterior=Ring._wrap(loops[i]), holes=holes.get(i, []))
        for i in np.flatnonzero(exterior).tolist()
    ]
    if tolerance > 0:
        parts = [_simplify_part(p, tolerance) for p in parts]
    return PolygonGeometry(parts=parts)
