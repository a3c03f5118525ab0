"""COCO run-length encoding, bit for bit identical to pycocotools.

Counts run over the mask in column-major (Fortran) order and alternate zeros/ones, starting with
zeros.  The compressed string is pycocotools' LEB128-like code: each count (from the fourth on,
as a difference to the count two before) is written in 5-bit groups, low group first, as
``chr(48 + group | 0x20 if more follows)``, with the sign taken from bit 0x10 of the last group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .errors import GeometryError

#: Largest mask we agree to decode (pixels); 16384 x 16384.
MAX_PIXELS = 1 << 28
_MAX_GROUPS = 8  # 40 bits: more than any count of a mask within MAX_PIXELS

BoolMask = npt.NDArray[np.bool_]
Counts = npt.NDArray[np.int64]


def mask_counts(mask: npt.ArrayLike) -> Counts:
    """Uncompressed COCO counts of a 2-D mask (nonzero = foreground)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise GeometryError("mask", f"must be 2-D, got shape {arr.shape}")
    h, w = arr.shape
    if h * w == 0:
        return np.zeros(1, dtype=np.int64)  # pycocotools writes one empty run: "0"
    m = arr if arr.dtype == np.bool_ else arr != 0
    # Transitions inside columns come from comparing each row with the next (cheap on C-ordered
    # data); only the few transition positions are then sorted into column-major order.
    inner = np.flatnonzero(m[1:] != m[:-1])
    if inner.size > (h * w) >> 6:
        # Busy masks: sorting would dominate, so transpose (a fast blocked copy) instead.
        flat = cv2.transpose(m.view(np.uint8)).reshape(-1) if h > 1 and w > 1 else m.reshape(-1)
        starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    else:
        rows, cols = np.divmod(inner, w)
        between = np.flatnonzero(m[-1, :-1] != m[0, 1:])
        starts = np.concatenate((cols * h + rows + 1, (between + 1) * h))
        starts.sort()
    bounds = np.empty(starts.size + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1] = starts
    bounds[-1] = h * w
    counts = np.diff(bounds)
    if m[0, 0]:
        counts = np.concatenate((np.zeros(1, dtype=np.int64), counts))
    return counts


def counts_to_string(counts: npt.ArrayLike) -> str:
    """pycocotools' compressed string for uncompressed counts."""
    cnts = np.asarray(counts, dtype=np.int64)
    if cnts.size == 0:
        return ""
    x = cnts.copy()
    if x.size > 3:
        x[3:] -= cnts[1:-2]
    mag = np.where(x < 0, ~x, x)
    k = np.ones(x.size, dtype=np.int64)
    for t in range(1, 13):
        over = mag >= (1 << (5 * t - 1))
        if not over.any():
            break
        k += over
    ends = np.cumsum(k)
    starts = ends - k
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for g in range(int(k.max())):
        sel = np.flatnonzero(k > g) if g else slice(None)
        c = (x[sel] >> (5 * g)) & 0x1F
        c |= (k[sel] - 1 > g) * 0x20
        out[starts[sel] + g] = c + 48
    return out.tobytes().decode("ascii")


def string_to_counts(s: str, field: str = "rle.counts") -> Counts:
    """Uncompressed counts from pycocotools' compressed string (raises GeometryError)."""
    if not isinstance(s, str):
        raise GeometryError(field, "must be a string")
    try:
        raw = s.encode("ascii")
    except UnicodeEncodeError:
        raise GeometryError(field, "must be ASCII") from None
    if not raw:
        return np.zeros(0, dtype=np.int64)
    b = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if b.min() < 0 or b.max() > 63:
        raise GeometryError(field, "contains a character outside the RLE alphabet")
    last = (b & 0x20) == 0
    if not last[-1]:
        raise GeometryError(field, "ends in the middle of a count")
    ends = np.flatnonzero(last)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > _MAX_GROUPS:
        raise GeometryError(field, "has a count that is too large")
    group = np.arange(b.size, dtype=np.int64) - np.repeat(starts, lengths)
    x = np.add.reduceat((b & 0x1F) << (5 * group), starts)
    negative = (b[ends] & 0x10) != 0
    x[negative] -= np.int64(1) << (5 * lengths[negative])
    cnts = x
    if cnts.size > 3:
        cnts = x.copy()
        cnts[1::2] = np.cumsum(x[1::2])
        cnts[2::2] = np.cumsum(x[2::2])
    return cnts


def _size(rle: Mapping[str, Any], field: str) -> tuple[int, int]:
    size = rle.get("size") if isinstance(rle, Mapping) else None
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise GeometryError(f"{field}.size", "must be [height, width] non-negative integers")
    h, w = int(size[0]), int(size[1])
    if h * w > MAX_PIXELS:
        raise GeometryError(f"{field}.size", f"mask larger than {MAX_PIXELS} pixels")
    return h, w


def rle_counts(rle: Mapping[str, Any], field: str = "rle") -> tuple[int, int, Counts]:
    """(height, width, counts) of a COCO RLE dict, checked for consistency."""
    h, w = _size(rle, field)
    raw = rle.get("counts")
    if isinstance(raw, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            raise GeometryError(f"{field}.counts", "must be a string or a list of integers")
        cnts = np.asarray(raw, dtype=np.int64) if raw else np.zeros(0, dtype=np.int64)
    else:
        cnts = string_to_counts(raw, f"{field}.counts")  # type: ignore[arg-type]
    if cnts.size and cnts.min() < 0:
        raise GeometryError(f"{field}.counts", "has a negative run length")
    if int(cnts.sum()) != h * w:
        raise GeometryError(f"{field}.counts", f"runs cover {int(cnts.sum())} pixels, not {h * w}")
    return h, w, cnts


def counts_to_mask(cnts: Counts, h: int, w: int) -> BoolMask:
    """C-contiguous bool HxW mask from uncompressed counts."""
    if h * w == 0:
        return np.zeros((h, w), dtype=bool)
    values = np.zeros(cnts.size, dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, cnts)
    cols = flat.reshape(w, h)
    mask = cv2.transpose(cols) if h > 1 and w > 1 else np.ascontiguousarray(cols.T)
    return mask.view(np.bool_)


def rle_encode(mask: npt.ArrayLike) -> dict[str, Any]:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a 2-D mask."""
    arr = np.asarray(mask)
    counts = mask_counts(arr)
    return {"size": [int(arr.shape[0]), int(arr.shape[1])], "counts": counts_to_string(counts)}


def rle_decode(rle: Mapping[str, Any]) -> BoolMask:
    """Bool HxW mask of a COCO RLE dict (compressed string or uncompressed list counts)."""
    h, w, cnts = rle_counts(rle)
    return counts_to_mask(cnts, h, w)


def rle_area(rle: Mapping[str, Any]) -> int:
    """Number of foreground pixels."""
    _, _, cnts = rle_counts(rle)
    return int(cnts[1::2].sum())


def rle_bbox(rle: Mapping[str, Any]) -> list[float]:
    """``[x, y, w, h]`` of the foreground, exactly as ``pycocotools.mask.toBbox``."""
    h, _, cnts = rle_counts(rle)
    m = (cnts.size // 2) * 2
    if m == 0 or h == 0:
        return [0.0, 0.0, 0.0, 0.0]
    cc = np.cumsum(cnts[:m])
    t = cc - (np.arange(m) % 2)
    y = t % h
    x = (t - y) // h
    xs, xe = int(x.min()), int(x.max())
    ys, ye = int(y.min()), int(y.max())
    if np.any(x[1::2] > x[0::2]):  # a run of ones wraps into the next column
        ys, ye = 0, h - 1
    return [float(xs), float(ys), float(xe - xs + 1), float(ye - ys + 1)]


def _flat_fortran(rle: Mapping[str, Any]) -> tuple[tuple[int, int], npt.NDArray[np.uint8]]:
    h, w, cnts = rle_counts(rle)
    values = np.zeros(cnts.size, dtype=np.uint8)
    values[1::2] = 1
    return (h, w), np.repeat(values, cnts)


def rle_iou(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Intersection over union of two masks (pycocotools ``iou`` with ``iscrowd=0``)."""
    size_a, fa = _flat_fortran(a)
    size_b, fb = _flat_fortran(b)
    if size_a != size_b:
        raise GeometryError("rle.size", f"masks differ in size: {list(size_a)} vs {list(size_b)}")
    inter = int(np.count_nonzero(fa & fb))
    union = int(np.count_nonzero(fa | fb))
    return inter / union if union else 0.0
