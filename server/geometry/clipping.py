"""Keeping shapes on the image: the in-image test and the fit-to-image clip.

The image covers ``[0, W] x [0, H]`` in pixel-corner coordinates.  Clipping uses shapely for
polygons and polylines, clamping for boxes, points and keypoints, and cropping for bitmaps.
Every function returns the very same object when nothing had to change.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from .errors import GeometryError
from .rle import counts_to_mask, rle_counts, rle_encode
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
)
from .topology import part_polygon


def _ring_inside(ring: Ring, w: int, h: int) -> bool:
    a = ring.array
    return bool(
        a[:, 0].min() >= 0 and a[:, 1].min() >= 0 and a[:, 0].max() <= w and a[:, 1].max() <= h
    )


def outside_field(obj: LabelObject, w: int, h: int) -> str | None:
    """Dotted field of the first part of ``obj`` that lies off the image, or None."""
    g = obj.geometry
    if isinstance(g, BBoxGeometry):
        if g.x < 0 or g.y < 0 or g.x + g.w > w or g.y + g.h > h:
            return "object.geometry"
    elif isinstance(g, PointGeometry):
        if not (0 <= g.x <= w and 0 <= g.y <= h):
            return "object.geometry"
    elif isinstance(g, PolygonGeometry):
        for i, part in enumerate(g.parts):
            if not _ring_inside(part.exterior, w, h):
                return f"object.geometry.parts.{i}.exterior"
    elif isinstance(g, PolylineGeometry):
        if not _ring_inside(g.points, w, h):
            return "object.geometry.points"
    elif isinstance(g, BitmapGeometry) and g.rle.size != [h, w]:
        return "object.geometry.rle.size"
    for k, kp in enumerate(obj.keypoints):
        if not (0 <= kp.x <= w and 0 <= kp.y <= h):
            return f"object.keypoints.{k}"
    return None


def _clamp(v: float, hi: float) -> float:
    return min(max(v, 0.0), float(hi))


def fit_box(g: BBoxGeometry, w: int, h: int, aspect: float | None = None) -> BBoxGeometry:
    """Box clipped onto the image; with ``aspect`` the box is shrunk and shifted instead."""
    if g.x >= 0 and g.y >= 0 and g.x + g.w <= w and g.y + g.h <= h:
        return g
    if aspect is not None:
        bw, bh = g.w, g.h
        if bw > w:
            bw, bh = float(w), w / aspect
        if bh > h:
            bw, bh = h * aspect, float(h)
        x = min(max(g.x, 0.0), w - bw)
        y = min(max(g.y, 0.0), h - bh)
        return BBoxGeometry(x=x, y=y, w=bw, h=bh)
    x0, y0 = _clamp(g.x, w), _clamp(g.y, h)
    x1, y1 = _clamp(g.x + g.w, w), _clamp(g.y + g.h, h)
    if x1 <= x0 or y1 <= y0:
        raise GeometryError("object.geometry", "box lies outside the image")
    return BBoxGeometry(x=x0, y=y0, w=x1 - x0, h=y1 - y0)


def _ring_of(coords: np.ndarray, w: int, h: int, closed: bool = True) -> Ring:
    """Ring from shapely coordinates, pinned onto the frame (GEOS may leave tiny overshoots)."""
    if closed and len(coords) > 1 and (coords[0] == coords[-1]).all():
        coords = coords[:-1]
    return Ring(np.clip(coords, 0.0, [float(w), float(h)]))


def fit_polygon(g: PolygonGeometry, w: int, h: int) -> PolygonGeometry:
    if all(_ring_inside(p.exterior, w, h) for p in g.parts):
        return g
    frame = shapely.box(0, 0, w, h)
    parts: list[PolygonPart] = []
    for part in g.parts:
        if _ring_inside(part.exterior, w, h):
            parts.append(part)
            continue
        poly = part_polygon(part)
        clipped = shapely.intersection(poly, frame)
        for piece in shapely.get_parts(clipped):
            if not isinstance(piece, shapely.Polygon) or piece.is_empty or piece.area <= 0:
                continue
            parts.append(
                PolygonPart(
                    exterior=_ring_of(np.asarray(piece.exterior.coords)[:, :2], w, h),
                    holes=[_ring_of(np.asarray(r.coords)[:, :2], w, h) for r in piece.interiors],
                )
            )
    if not parts:
        raise GeometryError("object.geometry", "polygon lies outside the image")
    return PolygonGeometry(parts=parts)


def fit_polyline(g: PolylineGeometry, w: int, h: int) -> PolylineGeometry:
    """Polyline clipped to the image; if it leaves and re-enters, the longest piece is kept."""
    if _ring_inside(g.points, w, h):
        return g
    clipped = shapely.intersection(shapely.linestrings(g.points.array), shapely.box(0, 0, w, h))
    lines = [p for p in shapely.get_parts(clipped) if isinstance(p, shapely.LineString)]
    lines = [p for p in lines if p.length > 0]
    if not lines:
        raise GeometryError("object.geometry", "polyline lies outside the image")
    longest = max(lines, key=lambda p: p.length)
    return PolylineGeometry(points=_ring_of(np.asarray(longest.coords)[:, :2], w, h, closed=False))


def fit_bitmap(g: BitmapGeometry, w: int, h: int) -> BitmapGeometry:
    """Bitmap cropped (and padded with background) to the image size."""
    if g.rle.size == [h, w]:
        return g
    mh, mw, cnts = rle_counts(g.rle.model_dump())
    mask = counts_to_mask(cnts, mh, mw)
    out = np.zeros((h, w), dtype=bool)
    ch, cw = min(h, mh), min(w, mw)
    out[:ch, :cw] = mask[:ch, :cw]
    rle = rle_encode(out)
    return BitmapGeometry(rle=RLE(size=rle["size"], counts=rle["counts"]))


def fit_keypoints(kps: list[Keypoint], w: int, h: int) -> list[Keypoint]:
    if all(0 <= k.x <= w and 0 <= k.y <= h for k in kps):
        return kps
    return [k.model_copy(update={"x": _clamp(k.x, w), "y": _clamp(k.y, h)}) for k in kps]


def fit_object(obj: LabelObject, w: int, h: int, aspect: float | None = None) -> LabelObject:
    """``obj`` with everything clipped onto a ``w`` x ``h`` image (the same object if on it)."""
    g = obj.geometry
    new_g: object = g
    if isinstance(g, BBoxGeometry):
        new_g = fit_box(g, w, h, aspect)
    elif isinstance(g, PointGeometry):
        if not (0 <= g.x <= w and 0 <= g.y <= h):
            new_g = PointGeometry(x=_clamp(g.x, w), y=_clamp(g.y, h))
    elif isinstance(g, PolygonGeometry):
        new_g = fit_polygon(g, w, h)
    elif isinstance(g, PolylineGeometry):
        new_g = fit_polyline(g, w, h)
    elif isinstance(g, BitmapGeometry):
        new_g = fit_bitmap(g, w, h)
    kps = fit_keypoints(obj.keypoints, w, h)
    if new_g is g and kps is obj.keypoints:
        return obj
    return obj.model_copy(update={"geometry": new_g, "keypoints": kps})


def snap_box(g: BBoxGeometry, aspect: float) -> BBoxGeometry:
    """Box grown (top-left corner kept) to the aspect ratio w / h."""
    if g.h > 0 and math.isclose(g.w / g.h, aspect, rel_tol=1e-9):
        return g
    if g.w / g.h > aspect:
        return BBoxGeometry(x=g.x, y=g.y, w=g.w, h=g.w / aspect)
    return BBoxGeometry(x=g.x, y=g.y, w=g.h * aspect, h=g.h)
