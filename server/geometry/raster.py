"""Shapes to pixels.

A pixel belongs to a shape when its *center* ``(j + 0.5, i + 0.5)`` lies inside it; a center
exactly on a left/top edge counts as inside, on a right/bottom edge as outside (half-open, so a
shape and its neighbour never share a pixel, and the exact pixel outline made by ``vectorize``
rasterizes back to the very same mask).  Polygons use the non-zero winding rule per part with
holes subtracted, and the parts of a group are unioned.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import GeometryError
from .rle import counts_to_mask, rle_counts
from .shapes import BBoxGeometry, BitmapGeometry, LabelObject, PolygonGeometry
from .topology import ring_area

BoolMask = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_CHUNK = 4_000_000  # edge/row crossings handled per numpy batch


def _edges(geometry: PolygonGeometry) -> tuple[F64, F64, F64, F64, I64]:
    """Every ring edge (x0, y0) -> (x1, y1) with a weight that makes exteriors wind +1 and holes
    -1 whatever their order, all rings in one set of arrays (few numpy calls: small polygons,
    such as a COCO export's thousands, pay per call, not per vertex)."""
    arrays = []
    kinds = []
    for part in geometry.parts:
        arrays.append(part.exterior.array)
        kinds.append(1)
        for hole in part.holes:
            arrays.append(hole.array)
            kinds.append(-1)
    lens = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    pts = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    ends = np.cumsum(lens)
    nxt = np.arange(1, int(ends[-1]) + 1)
    nxt[ends - 1] = ends - lens
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = x0[nxt], y0[nxt]
    twice_area = np.add.reduceat(x0 * y1 - x1 * y0, ends - lens)  # shoelace, per ring
    weight = np.where(twice_area >= 0, 1, -1) * np.asarray(kinds, dtype=np.int64)
    return x0, y0, x1, y1, np.repeat(weight, lens)


def edge_crossings(
    edges: tuple[F64, F64, F64, F64, I64], height: int | I64, width: int | I64
) -> tuple[I64, I64, I64, I64]:
    """Row, first-pixel column and winding sign where each edge crosses a row center line, and
    the edge (its index) each crossing comes from. ``height`` and ``width`` bound the window:
    one for all edges, or one per edge (the tiles of many windows at once,
    ``server/formats/_outline_batch.py``)."""
    x0, y0, x1, y1, sign = edges
    sign = np.where(y1 < y0, -sign, sign)  # direction in image rows decides the winding
    # Row i's center line y = i + 0.5 is crossed when ylo <= i + 0.5 < yhi (none if horizontal).
    r0 = np.clip(np.ceil(np.minimum(y0, y1) - 0.5), 0, height).astype(np.int64)
    r1 = np.clip(np.ceil(np.maximum(y0, y1) - 0.5), 0, height).astype(np.int64)
    n = r1 - r0
    # Indexed by the edge itself (no compacted copies): an edge crossing no row repeats 0 times.
    slope = np.divide(x1 - x0, y1 - y0, out=np.zeros_like(x0), where=n > 0)
    rows_out, cols_out, sign_out, edge_out = [], [], [], []
    csum = np.cumsum(n)
    start = 0
    while start < len(n):
        base = int(csum[start - 1]) if start else 0
        stop = len(n) if int(csum[-1]) - base <= _CHUNK else int(np.searchsorted(csum, base + _CHUNK, side="right"))
        stop = max(stop, start + 1)
        cn = n[start:stop]
        edge = np.repeat(np.arange(start, stop), cn)
        offs = np.arange(int(cn.sum()), dtype=np.int64) - np.repeat(np.cumsum(cn) - cn, cn)
        rows = r0[edge] + offs
        xs = x0[edge] + (rows + 0.5 - y0[edge]) * slope[edge]
        limit = width[edge] if isinstance(width, np.ndarray) else width
        cols = np.clip(np.ceil(xs - 0.5), 0, limit).astype(np.int64)
        rows_out.append(rows)
        cols_out.append(cols)
        sign_out.append(sign[edge])
        edge_out.append(edge)
        start = stop
    if not rows_out:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    if len(rows_out) == 1:
        return rows_out[0], cols_out[0], sign_out[0], edge_out[0]
    return np.concatenate(rows_out), np.concatenate(cols_out), np.concatenate(sign_out), np.concatenate(edge_out)


def rasterize_polygon(geometry: PolygonGeometry, height: int, width: int) -> BoolMask:
    if height == 0 or width == 0:
        return np.zeros((height, width), dtype=bool)
    rows, cols, sign, _ = edge_crossings(_edges(geometry), height, width)
    return _fill(rows, cols, sign, height, width)


def _fill(
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    sign: npt.NDArray[np.int64],
    height: int,
    width: int,
) -> BoolMask:
    """The mask from its signed row crossings, written as row-major runs.

    Sorted by (row, column), a running sum of the signs is the winding number of the pixels
    right of each crossing (every closed ring crosses a row line as often up as down, so the
    sum is back to 0 at each row's end and needs no reset).  Where "winding != 0" flips, a run
    starts or ends; ``np.repeat`` then writes the runs at memory speed.  The work is in the
    crossings (about the polygon's perimeter), not in the pixels, as in OpenCV's ``fillPoly``.
    """
    if rows.size == 0:
        return np.zeros((height, width), dtype=bool)
    order = np.argsort(rows * (width + 1) + cols, kind="stable")
    inside = np.cumsum(sign[order]) != 0
    flips = inside.copy()
    flips[1:] ^= inside[:-1]
    starts = (rows * width + cols)[order][flips]  # same (row, col) twice: an empty run, harmless
    bounds = np.empty(starts.size + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, height * width
    bounds[1:-1] = starts
    values = np.zeros(starts.size + 1, dtype=bool)  # np.repeat is ~5x faster on bool than uint8
    values[1::2] = True
    # One np.repeat into a fresh array: writing its result into a slice of np.zeros costs 5x more.
    return np.repeat(values, np.diff(bounds)).reshape(height, width)


def _hole_signs(geometry: PolygonGeometry) -> list[tuple[npt.NDArray[np.float64], int]]:
    """Each ring with its winding weight, one ring at a time (the tests' reference)."""
    rings: list[tuple[npt.NDArray[np.float64], int]] = []
    for part in geometry.parts:
        ext = part.exterior.array
        rings.append((ext, 1 if ring_area(ext) >= 0 else -1))
        for hole in part.holes:
            rings.append((hole.array, -1 if ring_area(hole.array) >= 0 else 1))
    return rings


def rasterize_box(geometry: BBoxGeometry, height: int, width: int) -> BoolMask:
    mask = np.zeros((height, width), dtype=bool)
    c0 = int(np.clip(np.ceil(geometry.x - 0.5), 0, width))
    c1 = int(np.clip(np.ceil(geometry.x + geometry.w - 0.5), 0, width))
    r0 = int(np.clip(np.ceil(geometry.y - 0.5), 0, height))
    r1 = int(np.clip(np.ceil(geometry.y + geometry.h - 0.5), 0, height))
    mask[r0:r1, c0:c1] = True
    return mask


def rasterize(obj: LabelObject, height: int, width: int) -> BoolMask:
    """Bool ``height`` x ``width`` mask of a box, polygon or bitmap object."""
    g = obj.geometry
    if isinstance(g, BBoxGeometry):
        return rasterize_box(g, height, width)
    if isinstance(g, PolygonGeometry):
        return rasterize_polygon(g, height, width)
    if isinstance(g, BitmapGeometry):
        h, w, cnts = rle_counts(g.rle.model_dump())
        if (h, w) != (height, width):
            raise GeometryError("object.geometry.rle.size", f"must be [{height}, {width}]")
        return counts_to_mask(cnts, h, w)
    raise GeometryError("object.type", f"a {obj.type} cannot be rasterized")
