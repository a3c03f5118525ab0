"""Exact pixel outlines of a mask: polygons whose corners sit on pixel corners.

Rasterizing these outlines (with Labelhub's pixel-center rule, or with pycocotools' polygon
rasterizer) gives back exactly the mask, so COCO polygon lists and YOLO segments made from them
describe the very pixels Labelhub has. Traced with OpenCV on the mask scaled up 2x: a boundary
sub-pixel at ``2k`` lies on pixel corner ``k``, one at ``2k + 1`` on corner ``k + 1``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from server.geometry.raster import rasterize_polygon
from server.geometry.shapes import PolygonGeometry, PolygonPart
from server.geometry.shapes import Ring as ShapeRing

Ring = list[list[int]]


def _simplify(points: npt.NDArray[np.int64]) -> Ring:
    """Drop repeated and collinear vertices (the outline is rectilinear)."""
    pts = points[(points != np.concatenate((points[-1:], points[:-1]))).any(axis=1)]
    if len(pts) < 3:
        short: Ring = pts.tolist()
        return short
    d1 = pts - np.concatenate((pts[-1:], pts[:-1]))
    d2 = np.concatenate((pts[1:], pts[:1])) - pts
    out: Ring = pts[d1[:, 0] * d2[:, 1] != d1[:, 1] * d2[:, 0]].tolist()
    return out


def outline(mask: npt.NDArray[np.bool_], offset: tuple[int, int] = (0, 0)) -> list[tuple[Ring, list[Ring]]]:
    """``[(exterior, [holes])]`` of the mask's 8-connected components, in pixel-corner coords
    shifted by ``offset`` (x, y)."""
    if not mask.any():
        return []
    big: npt.NDArray[np.uint8] = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(big, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    ox, oy = offset
    rings = [_simplify((c.reshape(-1, 2).astype(np.int64) + 1) // 2 + (ox, oy)) for c in contours]
    out: list[tuple[Ring, list[Ring]]] = []
    index: dict[int, int] = {}
    for i, (_nxt, _prv, _child, parent) in enumerate(hierarchy[0]):
        if parent < 0:
            index[i] = len(out)
            out.append((rings[i], []))
    for i, (_nxt, _prv, _child, parent) in enumerate(hierarchy[0]):
        if parent >= 0:
            out[index[parent]][1].append(rings[i])
    return out


def crop(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.bool_], tuple[int, int]]:
    """The mask cut to its bounding box, and the (x, y) of that box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return mask[:0, :0], (0, 0)
    return mask[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1], (int(cols[0]), int(rows[0]))


def _window(arr: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    x0 = max(0, math.floor(float(arr[:, 0].min())))
    y0 = max(0, math.floor(float(arr[:, 1].min())))
    x1 = min(w, math.ceil(float(arr[:, 0].max())))
    y1 = min(h, math.ceil(float(arr[:, 1].max())))
    return x0, y0, x1, y1


def polygon_pixels(geometry: dict[str, Any], w: int, h: int) -> tuple[np.ndarray, tuple[int, int], list[float]]:
    """The polygon's pixels within its (image-clipped) extent, that extent's origin, vertex bbox."""
    parts = geometry["parts"]
    allpts = np.concatenate([np.asarray(p["exterior"], dtype=np.float64).reshape(-1, 2) for p in parts])
    x0, y0, x1, y1 = _window(allpts, w, h)
    bx0, by0 = max(0.0, float(allpts[:, 0].min())), max(0.0, float(allpts[:, 1].min()))
    bx1, by1 = min(float(w), float(allpts[:, 0].max())), min(float(h), float(allpts[:, 1].max()))
    bbox = [bx0, by0, max(0.0, bx1 - bx0), max(0.0, by1 - by0)]
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), dtype=bool), (x0, y0), bbox
    shift = np.array([x0, y0], dtype=np.float64)
    geo = PolygonGeometry(parts=[PolygonPart(
        exterior=ShapeRing(np.asarray(p["exterior"], dtype=np.float64).reshape(-1, 2) - shift),
        holes=[ShapeRing(np.asarray(hole, dtype=np.float64).reshape(-1, 2) - shift) for hole in p.get("holes", [])],
    ) for p in parts])
    return rasterize_polygon(geo, y1 - y0, x1 - x0), (x0, y0), bbox


class Traced(NamedTuple):
    """One polygon through ``polygon_pixels``, ``crop`` and ``outline``: its pixel count, vertex
    bbox, exterior rings (None when any ring has holes: then COCO gets the pixels as RLE) and the
    window ``mask`` at ``origin`` (x, y)."""

    area: int
    bbox: list[float]
    exteriors: list[Ring] | None
    mask: npt.NDArray[np.bool_]
    origin: tuple[int, int]


def trace(geometry: dict[str, Any], w: int, h: int) -> Traced | None:
    """The per-polygon path every COCO writer shares; None when the polygon covers no pixel."""
    mask, (x0, y0), bbox = polygon_pixels(geometry, w, h)
    area = int(mask.sum())
    if area == 0:
        return None
    small, (cx, cy) = crop(mask)
    rings = outline(small, (x0 + cx, y0 + cy))
    exteriors = None if any(holes for _ext, holes in rings) else [ext for ext, _holes in rings]
    return Traced(area, bbox, exteriors, mask, (x0, y0))
