"""Smart selection: GrabCut inside a rectangle, steered by foreground/background strokes.

Strokes are hard labels (pixels under a foreground stroke are always selected, under a
background stroke never); ``previous`` (an earlier result) seeds the next run, so calling again
with more strokes refines the selection.  Large rectangles are processed on a downscaled crop
(at most ``MAX_WORK_PIXELS``) and the mask is scaled back, which bounds the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .errors import GeometryError
from .raster import rasterize_box
from .shapes import BBoxGeometry

#: Pixels GrabCut works on at most; bigger crops are scaled down to this.
MAX_WORK_PIXELS = 100_000
ITERATIONS = 4
MAX_STROKES = 200
MAX_STROKE_POINTS = 10_000

BoolMask = npt.NDArray[np.bool_]


def _strokes(value: Any, field: str) -> list[npt.NDArray[np.float64]]:
    if value is None:
        return []
    if not isinstance(value, Sequence | np.ndarray) or len(value) > MAX_STROKES:
        raise GeometryError(field, f"must be a list of at most {MAX_STROKES} strokes")
    out = []
    for i, stroke in enumerate(value):
        try:
            arr = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError):
            raise GeometryError(f"{field}.{i}", "must be a list of [x, y] points") from None
        if arr.size == 0:
            continue  # an empty stroke marks nothing
        if arr.ndim != 2 or arr.shape[1] != 2 or not 0 < len(arr) <= MAX_STROKE_POINTS:
            raise GeometryError(f"{field}.{i}", "must be a list of [x, y] points")
        if not np.isfinite(arr).all():
            raise GeometryError(f"{field}.{i}", "has a coordinate that is not finite")
        out.append(arr)
    return out


def _window(rect: Any, h: int, w: int) -> tuple[float, float, float, float]:
    try:
        x, y, rw, rh = (float(v) for v in rect)
    except (TypeError, ValueError):
        raise GeometryError("rect", "must be [x, y, w, h]") from None
    if not all(math.isfinite(v) for v in (x, y, rw, rh)) or rw <= 0 or rh <= 0:
        raise GeometryError("rect", "must be finite with positive width and height")
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + rw, float(w)), min(y + rh, float(h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise GeometryError("rect", "must cover at least 2 x 2 pixels of the image")
    return x0, y0, x1, y1


def smart_select(
    image: npt.NDArray[np.uint8],
    rect: Sequence[float],
    foreground_strokes: Any = (),
    background_strokes: Any = (),
    previous: BoolMask | None = None,
    brush_radius: float = 3.0,
) -> BoolMask:
    """Bool HxW selection inside ``rect`` = (x, y, w, h) of a BGR uint8 image."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise GeometryError("image", "must be an HxWx3 uint8 BGR image")
    h, w = img.shape[:2]
    rx0, ry0, rx1, ry1 = _window(rect, h, w)
    fg = _strokes(foreground_strokes, "foreground_strokes")
    bg = _strokes(background_strokes, "background_strokes")
    if not (math.isfinite(brush_radius) and 0 < brush_radius <= 1000):
        raise GeometryError("brush_radius", "must be in (0, 1000]")
    if previous is not None and np.shape(previous) != (h, w):
        raise GeometryError("previous", f"must be a {h}x{w} mask")
    inside = rasterize_box(BBoxGeometry(x=rx0, y=ry0, w=rx1 - rx0, h=ry1 - ry0), h, w)
    # Work on the rectangle plus a margin of sure background around it.
    margin = max(8, int(0.05 * max(rx1 - rx0, ry1 - ry0)))
    cx0, cy0 = max(math.floor(rx0) - margin, 0), max(math.floor(ry0) - margin, 0)
    cx1, cy1 = min(math.ceil(rx1) + margin, w), min(math.ceil(ry1) + margin, h)
    crop = img[cy0:cy1, cx0:cx1]
    crop_inside = inside[cy0:cy1, cx0:cx1]
    gc: npt.NDArray[Any] = np.where(crop_inside, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    if previous is not None:
        prev = np.asarray(previous, dtype=bool)[cy0:cy1, cx0:cx1]
        gc[crop_inside & ~prev] = cv2.GC_PR_BGD
    if not (gc == cv2.GC_BGD).any():  # the rectangle spans the image: seed a soft border
        gc[[0, -1], :] = cv2.GC_PR_BGD
        gc[:, [0, -1]] = cv2.GC_PR_BGD
    ch, cw = crop.shape[:2]
    scale = min(1.0, math.sqrt(MAX_WORK_PIXELS / (ch * cw)))
    if scale < 1.0:
        size = (max(2, round(cw * scale)), max(2, round(ch * scale)))
        work = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        gc = cv2.resize(gc, size, interpolation=cv2.INTER_NEAREST)
    else:
        work = np.ascontiguousarray(crop)
    work = np.asarray(work)
    sx, sy = gc.shape[1] / cw, gc.shape[0] / ch
    thickness = max(1, round(2 * brush_radius * min(sx, sy)))
    for strokes, value in ((bg, cv2.GC_BGD), (fg, cv2.GC_FGD)):
        for stroke in strokes:
            pts = np.stack(((stroke[:, 0] - cx0) * sx - 0.5, (stroke[:, 1] - cy0) * sy - 0.5), 1)
            fixed = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(gc, [fixed], False, value, thickness, cv2.LINE_8, shift=4)
            if len(pts) == 1:
                center = (int(fixed[0, 0, 0]), int(fixed[0, 0, 1]))
                cv2.circle(gc, center, max(1, thickness // 2) * 16, value, -1, cv2.LINE_8, shift=4)
    has_fg = bool(np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).any())
    has_bg = bool(np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD)).any())
    if has_fg and has_bg:
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        cv2.grabCut(work, gc, (0, 0, 0, 0), bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    selected = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    if scale < 1.0:
        selected = cv2.resize(selected * 255, (cw, ch), interpolation=cv2.INTER_LINEAR) >= 128
    out = np.zeros((h, w), dtype=bool)
    out[cy0:cy1, cx0:cx1] = selected.astype(bool) & crop_inside
    return out
