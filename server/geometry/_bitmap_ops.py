"""Pixel edits on bitmap masks: brush strokes and flood fill.

A brush stroke sets every pixel whose centre is within ``radius`` of the polyline, as decided by
one float64 formula (:func:`_formula`, the squared distance to a segment, ``<= radius**2``), so
ties always come out the same.  Testing every pixel of every segment's box with it (what
``tests/geometry/brush_reference.py`` does) takes 2-3 s of CPU for the heaviest legal stroke;
``brush`` tests only the pixels where the formula could go either way and paints the rest as
runs:

- along one image row the true squared distance ``G`` to a segment is convex, and near the
  segment the formula stays within ``eps`` of it (a wide bound on the rounding of its ten-odd
  operations, see ``_EPS``);
- per (segment, row) the row's chord of the capsule is found in closed form for a radius a
  little larger (widened by a pixel a side: the candidates) and a little smaller (the inner
  chord);
- the formula itself then checks both, whatever the closed form's own rounding: the inner
  chord's end pixels must be at most ``r2 - 2 eps`` (convexity then puts every pixel between
  them within ``r2 - eps``: in), and the pixel just past each end of the candidates (or the
  box's edge pixel, where the image's edge cuts the chord off) must be over ``r2 + 2 eps``
  and rising away from them, both beyond the rounding bound there (then every pixel beyond is
  out; where not, the box's pixels on that side are tested);
- the candidates' end pixels (tested by that check) and any others outside the inner chord
  are decided by the formula; the inner chords are painted through a difference array, band
  by band of rows, each band over its own runs' columns.

Thin boxes, and strokes whose boxes hold few pixels, are tested pixel by pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from .errors import GeometryError

BoolMask = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: At a pixel the formula puts ``d`` away from a segment, its rounding error is under ~35
#: units of 2**-53 (~4e-15) times ``scale * (d + 1)``, scale = ``2 (|dx| + |dy|) + radius + 2``
#: (the point's components are off by at most ~10 units times scale); the checks take
#: ``tol * (d + radius + 4)``, tol = _EPS x scale, and ``eps = tol * (radius + 4)`` near it.
#: Segments of a scale over ``_FAR`` (beyond any validated stroke) are tested pixel by pixel.
_EPS = 1e-12
_FAR = 1e12
#: Segments whose box is at most this many pixels wide are tested pixel by pixel, and so are
#: all of a stroke whose boxes hold at most ``_SMALL`` pixels (the chords cost ~0.2 ms); a
#: stroke of at most ``_FEW`` such segments box by box, as the reference does.
_THIN = 12
_SMALL = 1 << 14
_FEW = 8
#: (segment, row) pairs per batch, and pixels tested per batch: bounds on the scratch memory.
_PAIRS = 1 << 16
_PIXELS = 1 << 20
#: Pixels and rows per band of the run painting (int64 counts; each band spans only its own
#: runs' columns), and runs held before merging them.
_BAND = 1 << 20
_ROWS = 64
_MERGE = 1 << 21


class _Pairs(NamedTuple):
    """One entry per (segment, image row): the segment from (ax, ay) by (dx, dy) with squared
    length l2 and rounding scale tol (see ``_EPS``), the row, vy = its centre's y - ay (the
    formula's), and the segment's box columns [x0, x1)."""

    ax: F64
    dx: F64
    dy: F64
    l2: F64
    tol: F64
    row: I64
    vy: F64
    x0: I64
    x1: I64

    def take(self, i: I64) -> _Pairs:
        return _Pairs(self.ax[i], self.dx[i], self.dy[i], self.l2[i], self.tol[i], self.row[i],
                      self.vy[i], self.x0[i], self.x1[i])


def _formula(ax: F64, dx: F64, dy: F64, l2: F64, vy: F64, col: I64) -> F64:
    """Squared distance from the centre of pixel column ``col`` (of the row vy below ay) to the
    segment from ax by (dx, dy): the reference's float64 operations in the reference's order,
    so it rounds - and decides ties - the same."""
    ux = (col + 0.5) - ax
    dot = l2 == 0.0  # a lone point or a repeated one: the reference's other branch
    if dot.all():
        disc: F64 = ux**2 + vy**2
        return disc
    t = np.clip((ux * dx + vy * dy) / l2, 0.0, 1.0)
    d2: F64 = (ux - t * dx) ** 2 + (vy - t * dy) ** 2
    return np.where(dot, ux**2 + vy**2, d2) if dot.any() else d2


def _spans(p: _Pairs, rho2: F64) -> tuple[F64, F64]:
    """Offsets from ax of the row's chord of the capsule of radius sqrt(rho2): the hull of the
    two end discs' chords and the band's (lo > hi: no chord)."""
    vy = p.vy
    vb = vy - p.dy
    ha2, hb2 = rho2 - vy * vy, rho2 - vb * vb
    ha, hb = np.sqrt(np.maximum(ha2, 0.0)), np.sqrt(np.maximum(hb2, 0.0))
    lo = np.minimum(np.where(ha2 >= 0, -ha, np.inf), np.where(hb2 >= 0, p.dx - hb, np.inf))
    hi = np.maximum(np.where(ha2 >= 0, ha, -np.inf), np.where(hb2 >= 0, p.dx + hb, -np.inf))
    band = (p.dy != 0.0) & (p.l2 > 0.0) & (rho2 > 0.0)
    if not band.any():
        return lo, hi
    dy = np.where(band, p.dy, 1.0)
    rl = np.sqrt(np.maximum(rho2, 0.0) * p.l2)
    e1, e2 = (vy * p.dx - rl) / dy, (vy * p.dx + rl) / dy  # perpendicular distance rho
    w = vy * p.dy
    dx = np.where(p.dx != 0.0, p.dx, 1.0)
    q1, q2 = -w / dx, (p.l2 - w) / dx  # projections 0 and 1
    inside = (w >= 0.0) & (w <= p.l2)  # a vertical segment's band: the whole row or nothing
    plo = np.where(p.dx != 0.0, np.minimum(q1, q2), np.where(inside, -np.inf, np.inf))
    phi = np.where(p.dx != 0.0, np.maximum(q1, q2), np.where(inside, np.inf, -np.inf))
    blo, bhi = np.maximum(np.minimum(e1, e2), plo), np.minimum(np.maximum(e1, e2), phi)
    ok = band & (blo <= bhi)
    return np.where(ok, np.minimum(lo, blo), lo), np.where(ok, np.maximum(hi, bhi), hi)


def _col(p: _Pairs, x: F64, rnd: Callable[[F64], F64]) -> I64:
    """The pixel column whose centre is at x, rounded by ``rnd``, kept near the box."""
    return rnd(np.clip(x - 0.5, p.x0 - 4, p.x1 + 4)).astype(np.int64)


class _Rows(NamedTuple):
    """What a pair's row needs: the pixels to test, [zl, ilo) and (ihi, zr]; the inner chord
    [ilo, ihi], all in (none: ilo = zr + 1, ihi = zr); and the candidates' end pixels [clo, chi]
    already tested, in where ``in_lo`` / ``in_hi``."""

    zl: I64
    zr: I64
    ilo: I64
    ihi: I64
    clo: I64
    chi: I64
    in_lo: npt.NDArray[np.bool_]
    in_hi: npt.NDArray[np.bool_]


def _chords(p: _Pairs, radius: float) -> _Rows:
    """The candidates [clo, chi] (every pixel of the box outside them is out) and the inner
    chord of each pair's row, both checked with the formula (see the module's docstring)."""

    def at(col: I64) -> F64:
        return _formula(p.ax, p.dx, p.dy, p.l2, p.vy, col)

    r2 = radius * radius
    eps = p.tol * (radius + 4)  # the bound within radius + 4

    def bound(d2: F64) -> F64:  # the bound at a pixel the formula puts sqrt(d2) away
        return p.tol * (np.sqrt(d2) + radius + 4)

    lo, hi = _spans(p, r2 + 4 * eps)
    clo = _col(p, p.ax + lo, np.ceil) - 1
    chi = _col(p, p.ax + hi, np.floor) + 1
    vb = p.vy - p.dy
    gap = np.where((p.vy > 0) == (vb > 0), np.minimum(np.abs(p.vy), np.abs(vb)), 0.0)
    miss = gap * gap > r2 + 3 * eps  # the row passes above or below the capsule
    whole = ~miss & (clo > chi)  # no chord where one should be: test the whole row
    # A chord off the box (the image's edge cuts the capsule) leaves no candidates; the box's
    # edge pixel is then the pixel past them, checked as any other.
    clo = np.where(whole | miss, p.x0, np.where(clo > p.x1 - 1, p.x1, np.maximum(clo, p.x0)))
    chi = np.where(whole, p.x1 - 1, np.where(miss | (chi < p.x0), p.x0 - 1,
                                             np.minimum(chi, p.x1 - 1)))
    some = clo <= chi
    margin = 2 * eps
    far, near_lo = at(clo - 1), at(clo)
    sure_lo = (clo == p.x0) | miss | (
        (far - bound(far) > r2 + margin) & (near_lo + bound(near_lo) < far - bound(far)))
    far, near_hi = at(chi + 1), at(chi)
    sure_hi = (chi == p.x1 - 1) | miss | (
        (far - bound(far) > r2 + margin) & (near_hi + bound(near_hi) < far - bound(far)))
    zl = np.where(sure_lo, clo + 1, p.x0)
    zr = np.where(sure_hi, chi - 1, p.x1 - 1)
    rho2 = r2 - 4 * eps
    lo, hi = _spans(p, rho2)
    ilo = np.maximum(_col(p, p.ax + lo, np.ceil), clo)
    ihi = np.minimum(_col(p, p.ax + hi, np.floor), chi)
    lim = r2 - margin
    inner = (ilo <= ihi) & (rho2 > 0) & (at(ilo) <= lim) & (at(ihi) <= lim)
    return _Rows(zl, zr, np.where(inner, ilo, zr + 1), np.where(inner, ihi, zr), clo, chi,
                 some & (near_lo <= r2), some & (near_hi <= r2))


class _Segments(NamedTuple):
    ax: F64
    ay: F64
    dx: F64
    dy: F64
    l2: F64
    tol: F64
    x0: I64
    x1: I64
    y0: I64
    y1: I64


def _segments(pts: F64, radius: float, h: int, w: int) -> _Segments:
    """The stroke's segments (one point: a zero-length one) with the reference's boxes."""
    a, b = (pts, pts) if len(pts) == 1 else (pts[:-1], pts[1:])
    d = b - a
    l2 = np.array([float(v @ v) for v in d], dtype=np.float64)  # as the reference sums it
    scale = 2 * (np.abs(d[:, 0]) + np.abs(d[:, 1])) + radius + 2
    tol = np.where(scale < _FAR, _EPS * scale, np.inf)

    def box(lo: F64, hi: F64, n: int) -> tuple[I64, I64]:
        first = np.clip(np.floor(lo - radius - 0.5), 0, n).astype(np.int64)
        return first, np.clip(np.ceil(hi + radius + 0.5), 0, n).astype(np.int64)

    x0, x1 = box(np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0]), w)
    y0, y1 = box(np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1]), h)
    return _Segments(a[:, 0].copy(), a[:, 1].copy(), d[:, 0].copy(), d[:, 1].copy(), l2,
                     tol, x0, x1, y0, y1)


def _groups(sizes: I64, budget: int) -> Iterator[I64]:
    """Consecutive groups of the indices of the nonzero ``sizes``, each group's sizes summing
    to at most ``budget`` (or a single index)."""
    idx = np.flatnonzero(sizes > 0)
    ends = np.cumsum(sizes[idx])
    start = 0
    while start < len(idx):
        base = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, base + budget, side="right")), start + 1)
        yield idx[start:stop]
        start = stop


def _pairs(s: _Segments, k: I64) -> _Pairs:
    """Every (segment, row of its box) pair of the segments ``k``."""
    hs = s.y1[k] - s.y0[k]
    seg = np.repeat(k, hs)
    row = np.arange(len(seg)) - np.repeat(np.cumsum(hs) - hs - s.y0[k], hs)
    return _Pairs(s.ax[seg], s.dx[seg], s.dy[seg], s.l2[seg], s.tol[seg], row,
                  (row + 0.5) - s.ay[seg], s.x0[seg], s.x1[seg])


def _test(p: _Pairs, owner: I64, start: I64, length: I64, r2: float, out: BoolMask,
          draw: bool) -> None:
    """Test the pixels [start, start + length) of the rows of pairs ``owner`` with the formula
    and set those within the radius."""
    for g in _groups(length, _PIXELS):
        n = length[g]
        i = np.repeat(owner[g], n)
        col = np.repeat(start[g] - (np.cumsum(n) - n), n) + np.arange(len(i))
        hit = _formula(p.ax[i], p.dx[i], p.dy[i], p.l2[i], p.vy[i], col) <= r2
        out[p.row[i[hit]], col[hit]] = draw


def _boxes(s: _Segments, ks: I64, r2: float, out: BoolMask, draw: bool) -> None:
    """Test every pixel of the boxes of segments ``ks``, one box at a time."""
    for k in ks:
        x0, x1, y0, y1 = int(s.x0[k]), int(s.x1[k]), int(s.y0[k]), int(s.y1[k])
        vy = (np.arange(y0, y1)[:, None] + 0.5) - s.ay[k]
        d2 = _formula(s.ax[k], s.dx[k], s.dy[k], s.l2[k], vy, np.arange(x0, x1))
        out[y0:y1, x0:x1][d2 <= r2] = draw


class _Runs:
    """Row runs [lo, hi] of pixels certainly within the radius, painted at the end through a
    difference array over bands of rows (merged into disjoint runs when they grow many)."""

    def __init__(self, width: int) -> None:
        self.parts: list[tuple[I64, I64, I64]] = []
        self.count = 0
        self.big = width + 2

    def add(self, row: I64, lo: I64, hi: I64) -> None:
        self.parts.append((row, lo, hi))
        self.count += len(row)
        if self.count > _MERGE:
            self.parts = [self._merged()]
            self.count = len(self.parts[0][0])

    def _joined(self) -> tuple[I64, I64, I64]:
        row, lo, hi = (np.concatenate(f) for f in zip(*self.parts, strict=True))
        return row, lo, hi

    def _merged(self) -> tuple[I64, I64, I64]:
        row, lo, hi = self._joined()
        order = np.argsort(row * self.big + lo, kind="stable")
        row, lo, hi = row[order], lo[order], hi[order]
        top = np.maximum.accumulate(row * self.big + hi)  # rows ascend: never crosses a row
        first = np.flatnonzero(np.r_[True, row[1:] * self.big + lo[1:] > top[:-1] + 1])
        last = np.r_[first[1:] - 1, len(row) - 1]
        return row[first], lo[first], top[last] - row[first] * self.big

    def paint(self, out: BoolMask, draw: bool) -> None:
        if not self.count:
            return
        row, lo, hi = self._joined()
        first = int(row.min())
        step = max(1, min(_ROWS, _BAND // (int(hi.max()) - int(lo.min()) + 2)))
        band = (row - first) // step
        small = band.max() < 1 << 15  # then a radix sort
        order = np.argsort(band.astype(np.int16) if small else band, kind="stable")
        ends = np.cumsum(np.bincount(band))
        for b in np.flatnonzero(np.diff(ends, prepend=0)):  # each band's own columns
            sel = order[ends[b - 1] if b else 0 : ends[b]]
            top = first + int(b) * step
            x0, x1 = int(lo[sel].min()), int(hi[sel].max()) + 1
            rows = int(row[sel].max()) + 1 - top
            at = (row[sel] - top) * (x1 - x0 + 1) - x0
            size = rows * (x1 - x0 + 1)
            diff = np.bincount(at + lo[sel], minlength=size)
            diff -= np.bincount(at + hi[sel] + 1, minlength=size)
            cover = np.cumsum(diff.reshape(rows, -1), axis=1)[:, :-1] > 0
            region = out[top : top + rows, x0:x1]
            if draw:
                region |= cover
            else:
                region &= ~cover


def brush(mask: BoolMask, points: npt.NDArray[np.float64], radius: float, draw: bool) -> BoolMask:
    """Copy of ``mask`` with every pixel whose center is within ``radius`` of the stroke set
    (``draw``) or cleared.  The stroke is the polyline through ``points`` (one point = a dot)."""
    out = mask.copy()
    h, w = out.shape
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return out
    s = _segments(pts, radius, h, w)
    r2 = radius * radius
    runs = _Runs(w)
    heights = np.where(s.x1 > s.x0, s.y1 - s.y0, 0)
    small = int(heights @ (s.x1 - s.x0)) <= _SMALL
    thin = w if small else _THIN
    with np.errstate(all="ignore"):  # infinities in the closed forms are expected
        if small and np.count_nonzero(heights) <= _FEW:
            _boxes(s, np.flatnonzero(heights), r2, out, draw)
            return out
        for k in _groups(heights, _PAIRS):
            p = _pairs(s, k)
            zl, zr = p.x0.copy(), p.x1 - 1
            ilo, ihi = zr + 1, zr.copy()
            i = np.flatnonzero((p.x1 - p.x0 > thin) & np.isfinite(p.tol))
            if i.size:
                c = _chords(p.take(i), radius)
                zl[i], zr[i], ilo[i], ihi[i] = c.zl, c.zr, c.ilo, c.ihi
                for col, hit in ((c.clo, c.in_lo), (c.chi, c.in_hi)):
                    out[p.row[i[hit]], col[hit]] = draw
            n = np.arange(len(zl))
            _test(p, np.concatenate([n, n]), np.concatenate([zl, ihi + 1]),
                  np.maximum(np.concatenate([ilo - zl, zr - ihi]), 0), r2, out, draw)
            j = np.flatnonzero(ilo <= ihi)
            runs.add(p.row[j], ilo[j], ihi[j])
    runs.paint(out, draw)
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
