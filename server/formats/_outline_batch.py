"""Exact pixel outlines of many polygons at once: what ``polygon_pixels``, ``crop`` and ``outline``
give one polygon at a time, for a whole export batch in a few NumPy passes and one OpenCV trace.

Each polygon is rasterized in its window (its image-clipped vertex extent) as ``polygon_pixels``
does, with the same float arithmetic, but all windows are tiles of one canvas: the tiles sit
on shelves with a blank pixel between neighbours (so no two polygons' pixels touch, even at a
corner), the crossings of every polygon's edges are sorted and filled in one go, and one
``cv2.findContours`` on the canvas scaled up 2x traces every tile. OpenCV finds each outline
from its first pixel in raster order and follows it locally, so a tile's contours are the ones
its own mask gives, moved by the tile's origin (the tests check this against the per-polygon
path on random polygons). A polygon whose window is large, or that has many vertices, takes
the per-polygon path: batching buys nothing there, and the canvas stays small.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from server.formats._outline import trace
from server.geometry.raster import edge_crossings

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Windows up to this many pixels, polygons up to this many vertices, go on a canvas.
SMALL_WINDOW = 256 * 256
SMALL_VERTICES = 512
#: Pixels of one canvas (before the 2x scale): about 16 MB traced at a time.
CANVAS_PIXELS = 1 << 22
_CANVAS_WIDTH = 2048


class Outline(NamedTuple):
    """One polygon's pixels as COCO wants them: the pixel count, the vertex bbox (image-clipped,
    ``[x, y, w, h]``) and either its exterior rings (in ``outline``'s order) as the JSON text of
    their flat corner lists written as floats (``"3.0,5.0,9.0,5.0,..."``, no brackets) or, when
    its pixels have holes, ``rings`` None and the window's ``mask`` at ``origin`` (x, y)."""

    area: int
    bbox: list[float]
    rings: list[str] | None
    mask: npt.NDArray[np.bool_] | None
    origin: tuple[int, int]


class _Rings(NamedTuple):
    pts: F64  # every vertex
    start: I64  # first vertex of each ring
    size: I64  # vertices per ring
    poly: I64  # polygon of each ring
    hole: npt.NDArray[np.bool_]  # ring is a hole


def _flatten(geometries: list[dict[str, Any]]) -> _Rings:
    coords: list[Any] = []
    size: list[int] = []
    poly: list[int] = []
    hole: list[bool] = []
    for i, g in enumerate(geometries):
        for part in g["parts"]:
            for k, ring in enumerate((part["exterior"], *part.get("holes", ()))):
                coords.extend(ring)
                size.append(len(ring))
                poly.append(i)
                hole.append(k > 0)
    sizes = np.asarray(size, dtype=np.int64)
    return _Rings(np.asarray(coords, dtype=np.float64).reshape(-1, 2), np.cumsum(sizes) - sizes, sizes,
                  np.asarray(poly, dtype=np.int64), np.asarray(hole, dtype=bool))


def _single(geometry: dict[str, Any], w: int, h: int) -> Outline | None:
    """The per-polygon path (``trace``)."""
    traced = trace(geometry, w, h)
    if traced is None:
        return None
    if traced.exteriors is None:
        return Outline(traced.area, traced.bbox, None, traced.mask, traced.origin)
    texts = [".0,".join(str(v) for pt in ext for v in pt) + ".0" if ext else "" for ext in traced.exteriors]
    return Outline(traced.area, traced.bbox, texts, None, traced.origin)


class _Tiles(NamedTuple):
    members: list[int]  # polygons on this canvas
    tx: I64  # tile origin per member (canvas pixels)
    ty: I64
    width: int
    height: int
    shelf_y: I64  # top row of each shelf
    key: I64  # shelf * width + tx per member (sorted: lookup of a pixel's tile)


def _pack(members: list[int], ww: list[int], wh: list[int]) -> _Tiles:
    """Tiles left to right on shelves, a blank pixel right of and below each."""
    width = max(_CANVAS_WIDTH, max(ww[i] for i in members) + 1)
    tx, ty, shelf_of, shelves = [], [], [], [0]
    x = y = tallest = 0
    for i in members:
        if x + ww[i] + 1 > width:
            y += tallest + 1
            x = tallest = 0
            shelves.append(y)
        tx.append(x)
        ty.append(y)
        shelf_of.append(len(shelves) - 1)
        x += ww[i] + 1
        tallest = max(tallest, wh[i])
    txa = np.asarray(tx, dtype=np.int64)
    return _Tiles(members, txa, np.asarray(ty, dtype=np.int64), width, y + tallest + 1,
                  np.asarray(shelves, dtype=np.int64), np.asarray(shelf_of, dtype=np.int64) * width + txa)


def _ring_steps(size: I64) -> tuple[I64, I64]:
    """Index of the previous and the next vertex of every vertex of rings of ``size`` vertices
    (concatenated; a ring is closed)."""
    total = int(size.sum())
    start = np.cumsum(size) - size
    last = start + size - 1
    prev = np.arange(-1, total - 1, dtype=np.int64)
    nxt = np.arange(1, total + 1, dtype=np.int64)
    full = size > 0
    prev[start[full]] = last[full]
    nxt[last[full]] = start[full]
    return prev, nxt


def _simplify(pts: I64, size: I64) -> tuple[I64, I64]:
    """``_outline._simplify`` of many rings (concatenated, ``size`` vertices each): drop repeated
    vertices, then (in rings still of 3 or more) collinear ones."""
    ring = np.repeat(np.arange(size.size), size)
    prev, _ = _ring_steps(size)
    keep = (pts != pts[prev]).any(axis=1)
    pts, ring = pts[keep], ring[keep]
    size = np.bincount(ring, minlength=size.size)
    prev, nxt = _ring_steps(size)
    d1, d2 = pts - pts[prev], pts[nxt] - pts
    turn = d1[:, 0] * d2[:, 1] != d1[:, 1] * d2[:, 0]
    short = size < 3
    if short.any():
        turn |= short[ring]
    return pts[turn], np.bincount(ring[turn], minlength=size.size)


def float_texts(vals: I64, counts: I64) -> list[str]:
    """JSON text of groups of non-negative integers written as floats (``"3.0,12.0"``; what
    ``json`` gives ``float(v)`` below 1e16), one per group of ``counts`` consecutive values.
    Digits are written into one byte buffer, all values a digit place at a time."""
    if vals.size == 0:
        return [""] * counts.size
    digits = np.ones(vals.size, dtype=np.int64)
    place = 10
    while place <= int(vals.max()):
        digits += vals >= place
        place *= 10
    ends = np.cumsum(digits + 3)  # digits, ".0", ","
    starts = ends - digits - 3
    buf = np.empty(int(ends[-1]), dtype=np.uint8)
    rest = vals.copy()
    last = starts + digits - 1
    for k in range(int(digits.max())):
        sel = np.flatnonzero(digits > k) if k else slice(None)
        buf[last[sel] - k] = 48 + rest[sel] % 10
        rest //= 10
    buf[last + 1], buf[last + 2], buf[last + 3] = ord("."), ord("0"), ord(",")
    text = buf.tobytes().decode("ascii")
    group_end = np.cumsum(counts)
    first = starts[np.minimum(group_end - counts, vals.size - 1)].tolist()
    stop = (ends[np.maximum(group_end - 1, 0)] - 1).tolist()  # without the last comma
    return [text[a:b] if n else "" for a, b, n in zip(first, stop, counts.tolist(), strict=True)]


def _canvas(tiles: _Tiles, rings: _Rings, ox: I64, oy: I64, ww: list[int], wh: list[int],
            out: list[Outline | None], bbox: list[list[float]]) -> None:
    """Rasterize and trace one canvas of tiles; fill ``out`` for its polygons."""
    members = np.asarray(tiles.members, dtype=np.int64)
    slot = np.full(len(out), -1, dtype=np.int64)
    slot[members] = np.arange(members.size)
    rsel = np.flatnonzero(slot[rings.poly] >= 0)
    size, rpoly = rings.size[rsel], slot[rings.poly[rsel]]  # ring -> tile
    idx = np.repeat(rings.start[rsel] - np.cumsum(size) + size, size) + np.arange(int(size.sum()))
    tile = np.repeat(rpoly, size)
    shift = np.stack((ox[members], oy[members]), axis=1).astype(np.float64)
    pts = rings.pts[idx] - shift[tile]
    # Edges and their winding weight: exteriors +1, holes -1, whatever the ring's orientation.
    start = np.cumsum(size) - size
    nxt = np.arange(1, idx.size + 1)
    nxt[start + size - 1] = start
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = x0[nxt], y0[nxt]
    twice_area = np.add.reduceat(x0 * y1 - x1 * y0, start)
    weight = np.where(twice_area >= 0, 1, -1) * np.where(rings.hole[rsel], -1, 1)
    hgt = np.asarray(wh, dtype=np.int64)[members][tile]
    wid = np.asarray(ww, dtype=np.int64)[members][tile]
    rows, cols, sign, edge = edge_crossings((x0, y0, x1, y1, np.repeat(weight, size)), hgt, wid)
    # Fill (raster._fill) on the canvas: every tile's row sums back to 0 before the next tile's.
    ctile = tile[edge]
    key = (tiles.ty[ctile] + rows) * tiles.width + tiles.tx[ctile] + cols
    order = np.argsort(key, kind="stable")
    inside = np.cumsum(sign[order]) != 0
    flips = inside.copy()
    flips[1:] ^= inside[:-1]
    starts = key[order][flips]
    bounds = np.empty(starts.size + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, tiles.height * tiles.width
    bounds[1:-1] = starts
    values = np.zeros(starts.size + 1, dtype=bool)
    values[1::2] = True
    canvas = np.repeat(values, np.diff(bounds)).reshape(tiles.height, tiles.width)
    area = np.bincount(ctile[order][flips][0::2], weights=starts[1::2] - starts[0::2], minlength=members.size)
    # Trace the canvas scaled up 2x (see _outline); a contour belongs to the tile of its first pixel.
    big = cv2.resize(canvas.view(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(big, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    has_holes = np.zeros(members.size, dtype=bool)
    ext_tile = np.zeros(0, dtype=np.int64)
    pts2 = np.zeros((0, 2), dtype=np.int64)
    csize = np.zeros(0, dtype=np.int64)
    if contours:
        csize = np.fromiter((len(c) for c in contours), dtype=np.int64, count=len(contours))
        pts2 = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
        first = pts2[np.cumsum(csize) - csize] // 2
        shelf = np.searchsorted(tiles.shelf_y, first[:, 1], side="right") - 1
        ctile_of = np.searchsorted(tiles.key, shelf * tiles.width + first[:, 0], side="right") - 1
        is_hole = hierarchy[0][:, 3] >= 0
        has_holes[ctile_of[is_hole]] = True
        ext = ~is_hole & ~has_holes[ctile_of]
        pts2 = pts2[np.repeat(ext, csize)]
        csize, ext_tile = csize[ext], ctile_of[ext]
    corner = (pts2 + 1) // 2
    pt_tile = np.repeat(ext_tile, csize)
    corner += np.stack((ox[members] - tiles.tx, oy[members] - tiles.ty), axis=1)[pt_tile]
    simple, ssize = _simplify(corner, csize)
    by_tile: list[list[str]] = [[] for _ in range(members.size)]
    for t, text in zip(ext_tile.tolist(), float_texts(simple.ravel(), ssize * 2), strict=True):
        by_tile[t].append(text)
    for t, i in enumerate(tiles.members):
        a = int(area[t])
        if a == 0:
            continue
        origin = (int(ox[i]), int(oy[i]))
        if has_holes[t]:
            y, x = int(tiles.ty[t]), int(tiles.tx[t])
            out[i] = Outline(a, bbox[i], None, canvas[y : y + wh[i], x : x + ww[i]].copy(), origin)
        else:
            out[i] = Outline(a, bbox[i], by_tile[t], None, origin)


def outlines(geometries: list[dict[str, Any]], sizes: list[tuple[int, int]],
             canvas_pixels: int = CANVAS_PIXELS) -> list[Outline | None]:
    """Each polygon geometry's ``Outline`` in an image of ``sizes[i]`` (w, h); None where it
    covers no pixel (what ``polygon_pixels`` + ``crop`` + ``outline`` give one at a time).
    Small polygons share canvases of about ``canvas_pixels``."""
    out: list[Outline | None] = [None] * len(geometries)
    if not geometries:
        return out
    rings = _flatten(geometries)
    # Window and bbox from the exterior vertices (polygon_pixels' _window), per polygon.
    starts = np.flatnonzero(np.r_[True, rings.poly[1:] != rings.poly[:-1]])
    pstart = rings.start[starts]
    ext = np.repeat(~rings.hole, rings.size)
    inf = np.inf
    xs, ys = rings.pts[:, 0], rings.pts[:, 1]
    lo_x = np.minimum.reduceat(np.where(ext, xs, inf), pstart).tolist()
    lo_y = np.minimum.reduceat(np.where(ext, ys, inf), pstart).tolist()
    hi_x = np.maximum.reduceat(np.where(ext, xs, -inf), pstart).tolist()
    hi_y = np.maximum.reduceat(np.where(ext, ys, -inf), pstart).tolist()
    nverts = np.add.reduceat(rings.size, starts).tolist()
    ox = np.zeros(len(geometries), dtype=np.int64)
    oy = np.zeros(len(geometries), dtype=np.int64)
    ww: list[int] = []
    wh: list[int] = []
    bbox: list[list[float]] = []
    small: list[int] = []
    for i, (w, h) in enumerate(sizes):
        x0, y0 = max(0, math.floor(lo_x[i])), max(0, math.floor(lo_y[i]))
        x1, y1 = min(w, math.ceil(hi_x[i])), min(h, math.ceil(hi_y[i]))
        bx0, by0 = max(0.0, lo_x[i]), max(0.0, lo_y[i])
        bx1, by1 = min(float(w), hi_x[i]), min(float(h), hi_y[i])
        bbox.append([bx0, by0, max(0.0, bx1 - bx0), max(0.0, by1 - by0)])
        ox[i], oy[i] = x0, y0
        ww.append(x1 - x0)
        wh.append(y1 - y0)
        if x1 <= x0 or y1 <= y0:
            continue  # no pixel
        if (x1 - x0) * (y1 - y0) > SMALL_WINDOW or nverts[i] > SMALL_VERTICES:
            out[i] = _single(geometries[i], w, h)
        else:
            small.append(i)
    group: list[int] = []
    pixels = 0
    for i in small:
        tile = (ww[i] + 1) * (wh[i] + 1)
        if group and pixels + tile > canvas_pixels:
            _canvas(_pack(group, ww, wh), rings, ox, oy, ww, wh, out, bbox)
            group, pixels = [], 0
        group.append(i)
        pixels += tile
    if group:
        _canvas(_pack(group, ww, wh), rings, ox, oy, ww, wh, out, bbox)
    return out
