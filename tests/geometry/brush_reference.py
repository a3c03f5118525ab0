"""The previous ``server.geometry._bitmap_ops.brush``, kept only as the reference the faster one
is checked against, pixel for pixel: it tests every pixel of every segment's bounding box with
the exact distance formula (float64, ``dist2 <= r2``), so it decides every tie."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

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
