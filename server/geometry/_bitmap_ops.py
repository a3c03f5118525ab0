"""Pixel edits on bitmap masks: brush strokes and flood fill."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import numpy.typing as npt

from .errors import GeometryError

BoolMask = npt.NDArray[np.bool_]


def brush(mask: BoolMask, points: npt.NDArray[np.float64], radius: float, draw: bool) -> BoolMask:
    """Copy of ``mask`` with every pixel whose center is within ``radius`` of the stroke set
    (``draw``) or cleared.  The stroke is the polyline through ``points`` (one point = a dot)."""
    out = mask.copy()
    h, w = out.shape
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    segments = [(pts[0], pts[0])] if len(pts) == 1 else list(itertools.pairwise(pts))
    r2 = radius * radius
    for a, b in segments:
        x0 = max(math.floor(min(a[0], b[0]) - radius - 0.5), 0)
        x1 = min(math.ceil(max(a[0], b[0]) + radius + 0.5), w)
        y0 = max(math.floor(min(a[1], b[1]) - radius - 0.5), 0)
        y1 = min(math.ceil(max(a[1], b[1]) + radius + 0.5), h)
        if x1 <= x0 or y1 <= y0:
            continue
        cx = np.arange(x0, x1, dtype=np.float64) + 0.5
        cy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
        d = b - a
        length2 = float(d @ d)
        if length2 == 0.0:
            dist2 = (cx - a[0]) ** 2 + (cy - a[1]) ** 2
        else:
            t = np.clip(((cx - a[0]) * d[0] + (cy - a[1]) * d[1]) / length2, 0.0, 1.0)
            dist2 = (cx - a[0] - t * d[0]) ** 2 + (cy - a[1] - t * d[1]) ** 2
        out[y0:y1, x0:x1][dist2 <= r2] = draw
    return out


def flood_fill(mask: BoolMask, x: float, y: float, field: str = "op") -> BoolMask:
    """Copy of ``mask`` with the background region (4-connected) around pixel (x, y) filled.

    An enclosed region fills just that region; an open one (touching the image border) fills
    all background connected to it - on a mask without closed regions, the whole image.
    A seed on the foreground changes nothing.
    """
    h, w = mask.shape
    j, i = math.floor(x), math.floor(y)
    if not (0 <= i < h and 0 <= j < w):
        raise GeometryError(f"{field}.x", "fill seed lies outside the image")
    if mask[i, j]:
        return mask.copy()
    img = mask.astype(np.uint8)
    cv2.floodFill(img, None, (j, i), 1, flags=4)
    return img.view(np.bool_)
