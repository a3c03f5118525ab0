"""The previous ``server.geometry.vectorize`` (NumPy over the boundary segments), kept only as
the reference the OpenCV-traced one is checked against: same rings, same order.

Bitmap to polygon: the exact pixel outline (holes kept), optionally simplified.

The detailed outline runs along pixel edges (integer pixel-corner coordinates), so rasterizing
it gives back the very same mask.  Each 4-connected foreground component becomes one part;
where two components touch only at a pixel corner they become two parts, and a ring that would
touch itself at a corner is split there (into a part and a hole touching at one point, which is
valid in OGC simple features).  Exterior rings come out clockwise on screen (positive shoelace
area in y-down coordinates), holes counter-clockwise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from server.geometry.errors import GeometryError
from server.geometry.shapes import PolygonGeometry, PolygonPart, Ring
from server.geometry.vectorize import (  # shared: the trace is what differs
    _simplify_part,
    _split_pinches,
)

I64 = npt.NDArray[np.int64]


def _points(edges: npt.NDArray[Any]) -> tuple[I64, I64]:
    """(x, y) of the nonzero pixels in raster order (``cv2.findNonZero``: 50x np.flatnonzero)."""
    pts = cv2.findNonZero(edges)
    if pts is None:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    xy = pts.reshape(-1, 2).astype(np.int64)
    return xy[:, 0], xy[:, 1]


def _runs(line: I64, pos: I64) -> tuple[I64, I64, I64]:
    """(line, first, last) of every run of consecutive ``pos`` on one ``line``; input sorted."""
    if line.size == 0:
        return line, pos, pos
    start = np.ones(line.size, dtype=bool)
    start[1:] = (line[1:] != line[:-1]) | (pos[1:] != pos[:-1] + 1)
    end = np.ones(line.size, dtype=bool)
    end[:-1] = start[1:]
    return line[start], pos[start], pos[end]


def _by_column(x: I64) -> I64:
    """Order that sorts raster-ordered points by (x, y): stable on x alone (radix for 16 bits)."""
    key = x.astype(np.uint16) if x.size and int(x.max()) < 1 << 16 else x
    return np.argsort(key, kind="stable")


class Segments(NamedTuple):
    sx: I64
    sy: I64
    ex: I64
    ey: I64
    d: I64
    north_key: I64  # row * (w + 1) + x of every north unit edge (unsorted)
    north_seg: I64  # the segment each of those lies on


def _segments(mask: npt.NDArray[np.bool_]) -> Segments:
    """Maximal straight boundary segments (sx, sy, ex, ey, direction), foreground on the right.

    Directions in y-down image coordinates: 0 east, 1 south, 2 west, 3 north.  East segments
    come first, ordered by (y, x), then west by (y, x), south and north by (x, y).  The
    full-image passes are OpenCV's (``absdiff`` against the mask shifted by a row or a column
    marks the unit edges, ``findNonZero`` lists them in raster order, no padded copy); the rest
    works on the boundary alone.
    """
    m = mask.view(np.uint8)
    h, w = m.shape
    zero = np.zeros(0, dtype=np.int64)
    # Horizontal unit edges on corner rows 0..h: the first and last row of pixels face the
    # outside; between rows an edge is where a pixel differs from the one above it.
    tx, _ = _points(m[:1])
    ix, iy = _points(cv2.absdiff(m[1:], m[:-1])) if h > 1 else (zero, zero)
    bx, _ = _points(m[h - 1 :])
    hx = np.concatenate((tx, ix, bx))
    hy = np.concatenate((np.zeros_like(tx), iy + 1, np.full_like(bx, h)))
    down = np.concatenate((np.ones(tx.size, bool), m[iy + 1, ix] != 0, np.zeros(bx.size, bool)))
    # Vertical unit edges on corner columns 0..w, grouped by column, each group by row (what
    # the stable sort by column in _by_column needs).
    _, ly = _points(m[:, :1])
    jx, jy = _points(cv2.absdiff(m[:, 1:], m[:, :-1])) if w > 1 else (zero, zero)
    _, ry = _points(m[:, w - 1 :])
    vx = np.concatenate((np.zeros_like(ly), jx + 1, np.full_like(ry, w)))
    vy = np.concatenate((ly, jy, ry))
    east = np.concatenate((np.ones(ly.size, bool), m[jy, jx + 1] != 0, np.zeros(ry.size, bool)))
    out = []
    y, a, b = _runs(hy[down], hx[down])  # east
    out.append((a, y, b + 1, y, 0))
    y, a, b = _runs(hy[~down], hx[~down])  # west
    out.append((b + 1, y, a, y, 2))
    px, py = vx[~east], vy[~east]
    order = _by_column(px)
    x, a, b = _runs(px[order], py[order])  # south
    out.append((x, a, x, b + 1, 1))
    px, py = vx[east], vy[east]
    order = _by_column(px)
    x, a, b = _runs(px[order], py[order])  # north
    out.append((x, b + 1, x, a, 3))
    # Each north unit edge's row * (w + 1) + x and its segment (for _parts; sorted there).
    first = len(out[0][0]) + len(out[1][0]) + len(out[2][0])
    north_seg = np.empty(px.size, dtype=np.int64)
    if px.size:
        start = np.ones(px.size, dtype=bool)
        start[1:] = (px[order][1:] != px[order][:-1]) | (py[order][1:] != py[order][:-1] + 1)
        north_seg[order] = first + np.cumsum(start) - 1
    north_key = py * (w + 1) + px
    sx = np.concatenate([o[0] for o in out])
    sy = np.concatenate([o[1] for o in out])
    ex = np.concatenate([o[2] for o in out])
    ey = np.concatenate([o[3] for o in out])
    d = np.concatenate([np.full(len(o[0]), o[4], dtype=np.int64) for o in out])
    return Segments(sx, sy, ex, ey, d, north_key, north_seg)


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


def _trace(mask: npt.NDArray[np.bool_]) -> list[tuple[npt.NDArray[np.float64], int, bool]]:
    """Simple boundary loops as (vertices, part, exterior?): a part is the number of an exterior
    loop, and a hole carries the number of the exterior of its component (loops in segment
    order)."""
    w = mask.shape[1]
    seg = _segments(mask)
    sx, sy, ex, ey, d = seg[:5]
    if len(sx) == 0:
        return []
    nxt = _successors(sx, sy, ex, ey, d, w)
    order, labels = _cycles(nxt)
    vid = sy * (w + 1) + sx
    # A vertex two segments end at is a pinch (two pixels touching at a corner).
    eid = np.sort(ey * (w + 1) + ex)
    twice = eid[1:][eid[1:] == eid[:-1]]  # few: a sorted lookup beats np.isin's full sort
    pos = np.minimum(np.searchsorted(twice, vid), max(twice.size - 1, 0))
    pinch = twice[pos] == vid if twice.size else np.zeros(vid.size, dtype=bool)
    bounds = np.flatnonzero(np.diff(labels)) + 1
    pieces: list[npt.NDArray[np.int64]] = []
    for seq in np.split(order, bounds):
        if pinch[seq].any():
            pieces.extend(_split_pinches(seq, vid, pinch))
        else:
            pieces.append(seq)
    loop_of = np.empty(len(sx), dtype=np.int64)
    for i, piece in enumerate(pieces):
        loop_of[piece] = i
    loops = [np.stack((sx[p], sy[p]), axis=1).astype(np.float64) for p in pieces]
    # Shoelace per loop from its segments, in integers (exact): > 0 exterior, < 0 hole.
    twice_area = np.bincount(loop_of, weights=sx * ey - ex * sy, minlength=len(pieces))
    exterior = twice_area > 0
    part = _parts(exterior, pieces, loop_of, seg, w)
    return [(pts, int(part[i]), bool(exterior[i])) for i, pts in enumerate(loops)]


def _parts(exterior: npt.NDArray[np.bool_], pieces: list[I64], loop_of: I64,
           seg: Segments, w: int) -> I64:
    """The exterior loop of each loop's 4-connected component, without labelling pixels.

    A hole's foreground (on its right) is one component.  Take the foreground pixel just west of
    the hole's leftmost south-going edge and walk west along its row to the start of its run:
    the north-going edge there lies on a loop of the same component (exterior, or a hole further
    left), never on this hole.  Following those links ends at the component's exterior."""
    parent = np.arange(len(pieces), dtype=np.int64)
    holes = np.flatnonzero(~exterior).tolist()
    if not holes:
        return parent
    by_key = np.argsort(seg.north_key)
    keys, owner = seg.north_key[by_key], seg.north_seg[by_key]
    # Each hole's leftmost south-going segment: sort the holes' south segments by (loop, x).
    south = np.flatnonzero((seg.d == 1) & ~exterior[loop_of])
    south = south[np.lexsort((seg.sx[south], loop_of[south]))]
    first = south[np.flatnonzero(np.r_[True, loop_of[south][1:] != loop_of[south][:-1]])]
    row, col = seg.sy[first], seg.sx[first] - 1
    k = np.searchsorted(keys, row * (w + 1) + col, side="right") - 1
    parent[loop_of[first]] = loop_of[owner[k]]
    for i in holes:  # resolve chains hole -> hole -> ... -> exterior
        j = i
        while parent[j] != j:
            j = int(parent[j])
        parent[i] = j
    return parent


def vectorize(mask: npt.ArrayLike, tolerance: float = 0.0) -> PolygonGeometry:
    """Polygon geometry of a mask; ``tolerance`` > 0 simplifies (Douglas-Peucker, pixels)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise GeometryError("mask", "must be 2-D")
    m = np.ascontiguousarray(arr != 0) if arr.dtype != np.bool_ else np.ascontiguousarray(arr)
    if m.size == 0:
        raise GeometryError("mask", "is empty: nothing to vectorize")
    # The foreground's bounding box (OpenCV: one pass); the crop stays a view, copied once
    # when _segments pads it.
    c0, r0, cw, ch = cv2.boundingRect(m.view(np.uint8))
    if cw == 0 or ch == 0:
        raise GeometryError("mask", "is empty: nothing to vectorize")
    crop = m[r0 : r0 + ch, c0 : c0 + cw]
    exteriors: dict[int, npt.NDArray[np.float64]] = {}
    holes: dict[int, list[npt.NDArray[np.float64]]] = {}
    for pts, comp, is_exterior in _trace(crop):
        pts += (c0, r0)
        if is_exterior:
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
