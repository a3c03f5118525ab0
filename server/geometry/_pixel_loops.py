"""The boundary loops of a mask along pixel edges, traced by ``cv2.findContours``.

Our outlines take foreground as 4-connected and background as 8-connected; ``findContours``
(Suzuki-Abe) takes non-zero pixels as 8-connected and zero pixels as 4-connected.  So it traces
the *inverted* mask inside a frame of background: each chain of background pixel centers it
gives runs round one foreground component (a hole border) or one hole (an outer border), and at
two diagonal foreground pixels it steps diagonally between the two background pixels, which is
our "turn right at a pinch".

A chain turns into the pixel-edge loop by a table on (incoming, outgoing) chain direction: at a
chain pixel, OpenCV scans its neighbours counter-clockwise (on screen) from the previous pixel to
the next, and every 4-neighbour it passes is foreground, so the pixel's edge on that side is a
boundary edge, walked with the foreground on the right.  Consecutive edges with the same heading
form one maximal straight segment.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

#: Largest scratch buffer kept per thread (bytes): a 4000 x 3000 image's fits.
_KEEP = 1 << 25

# OpenCV chain codes, y down: 0 E, 1 NE, 2 N, 3 NW, 4 W, 5 SW, 6 S, 7 SE, and 8 for the
# chain of a lone pixel (no step); indexed [(dy + 1) * 3 + dx + 1].
_CODE = np.array([3, 2, 1, 4, 8, 0, 5, 6, 7], dtype=np.int64)
_STEP = ((1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1))
# Per side k // 2 (k = 0 E, 2 N, 4 W, 6 S): the corner its edge starts at, from the pixel's
# top-left corner, less the one pixel the frame shifts the inverted mask by.  Walked with the
# foreground on its right, the edge heads north, west, south or east: side 3 is the east one.
_SIDE_DX = np.array([1, 1, 0, 0], dtype=np.int64) - 1
_SIDE_DY = np.array([1, 0, 0, 1], dtype=np.int64) - 1
_EAST = 3


def _tables() -> tuple[I64, I64, I64, npt.NDArray[np.bool_], I64, I64]:
    """Keyed by 9 * (step in) + (step out): how many sides the scan passes, where those sides
    (k // 2, in scan order) start in one flat list, the list, and whether a diagonal step out
    passes a pinch on its first flank, and where its second flank lies (that needs a look at
    the image).

    Coming in by step ``i`` the previous pixel lies at ``a = i + 4``; the scan goes a + 1,
    a + 2, ... up to ``b - 1`` (all seven others when ``a == b``)."""
    count = np.zeros(81, dtype=np.int64)
    first = np.zeros(81, dtype=np.int64)
    flat: list[int] = []
    flank = np.zeros(81, dtype=bool)
    flank_dx = np.zeros(81, dtype=np.int64)
    flank_dy = np.zeros(81, dtype=np.int64)
    for i in range(9):
        for b in range(9):
            if (i == 8) != (b == 8):
                continue  # only a lone pixel's chain has no step
            a = (i + 4) % 8 if i < 8 else 5
            b8 = b if b < 8 else 5
            stop = b8 + 8 if b8 <= a else b8
            ks = [(k % 8) // 2 for k in range(a + 1, stop) if k % 2 == 0]
            count[9 * i + b], first[9 * i + b] = len(ks), len(flat)
            flat.extend(ks)
            if b < 8 and b % 2 == 1 and a != (b - 1) % 8:
                flank[9 * i + b] = True
                flank_dx[9 * i + b], flank_dy[9 * i + b] = _STEP[(b + 1) % 8]
    return count, first, np.asarray(flat, dtype=np.int64), flank, flank_dx, flank_dy


_COUNT, _FIRST, _SIDES, _FLANK, _FLANK_DX, _FLANK_DY = _tables()


class Loops(NamedTuple):
    """Boundary segments (pixel-corner coordinates of the mask given), cycle after cycle.

    Each cycle is one closed loop of maximal straight segments (foreground on the right),
    starting at its top-left east segment (least (y, x) of the start); cycles are ordered by
    that segment."""

    sx: I64
    sy: I64
    cross: I64  # sx * ey - ex * sy of each segment (its end is the next one's start)
    pinch: npt.NDArray[np.bool_]  # the segment starts at a vertex its cycle may pass twice
    start: I64  # first segment of each cycle
    size: I64  # segments per cycle
    owner: I64  # per cycle: the cycle of the component it belongs to (itself unless a hole)


def _closed_steps(start: I64, size: I64, total: int) -> tuple[I64, I64]:
    """Previous and next index of every element of closed sequences laid end to end."""
    prev = np.arange(-1, total - 1, dtype=np.int64)
    nxt = np.arange(1, total + 1, dtype=np.int64)
    prev[start] = start + size - 1
    nxt[start + size - 1] = start
    return prev, nxt


_scratch = threading.local()


def _inverted(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """The mask inverted (background non-zero) inside a one-pixel frame of background.

    Written into a buffer kept per thread (up to ``_KEEP`` bytes): a fresh 12 MB array per call
    costs page faults, and its churn makes the allocator hand ``findContours``'s own padded copy
    fresh pages too (measured on the 12 MP benchmark mask: the inversion 4.3 ms instead of 1.2,
    ``findContours`` 14 ms instead of 3.4)."""
    h, w = mask.shape
    n = (h + 2) * (w + 2)
    buf: npt.NDArray[np.uint8] | None = getattr(_scratch, "buf", None)
    if buf is None or buf.size < n:
        buf = np.empty(n, dtype=np.uint8)
        if n <= _KEEP:
            _scratch.buf = buf
    out = buf[:n].reshape(h + 2, w + 2)
    out[0], out[-1], out[:, 0], out[:, -1] = 255, 255, 255, 255
    cv2.threshold(mask.view(np.uint8), 0, 255, cv2.THRESH_BINARY_INV, dst=out[1:-1, 1:-1])
    return out


def trace(mask: npt.NDArray[np.bool_]) -> Loops:
    """The boundary cycles of a non-empty mask (see the module doc)."""
    w = mask.shape[1]
    inverted = _inverted(mask)
    contours, hierarchy = cv2.findContours(inverted, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    parent = hierarchy[0][:, 3].astype(np.int64)
    # The frame's outer border is the only one without a parent: not a loop of the mask.
    kept = np.flatnonzero(parent >= 0)
    chains = [contours[i] for i in kept.tolist()]
    npts = np.fromiter((len(c) for c in chains), dtype=np.int64, count=len(chains))
    xy = np.concatenate(chains).reshape(-1, 2)
    x, y = xy[:, 0].astype(np.int64), xy[:, 1].astype(np.int64)
    first = np.cumsum(npts) - npts
    last = first + npts - 1
    step = np.empty_like(x)  # (dy + 1) * 3 + dx + 1 of the step to the next chain pixel
    step[:-1] = (y[1:] - y[:-1]) * 3 + x[1:] - x[:-1]
    step[last] = (y[first] - y[last]) * 3 + x[first] - x[last]
    out = _CODE[step + 4]
    into = np.empty_like(out)
    into[1:] = out[:-1]
    into[first] = out[last]
    key = into * 9 + out
    # Every boundary unit edge in loop order by its pixel side; a segment starts where it turns.
    count = _COUNT[key]
    estart = np.cumsum(count) - count
    pixel = np.repeat(np.arange(len(x)), count)
    side = _SIDES[np.repeat(_FIRST[key] - estart, count) + np.arange(len(pixel))]
    nedges = np.add.reduceat(count, first)
    efirst = np.cumsum(nedges) - nedges
    before = np.empty_like(side)
    before[1:] = side[:-1]
    before[efirst] = side[efirst + nedges - 1]
    turn = side != before
    seg = np.flatnonzero(turn)
    px, sside = pixel[seg], side[seg]
    sx, sy = x[px] + _SIDE_DX[sside], y[px] + _SIDE_DY[sside]
    nseg = np.add.reduceat(turn, efirst, dtype=np.int64)
    sfirst = np.cumsum(nseg) - nseg
    pinch = np.zeros(len(seg), dtype=bool)
    pinch[np.searchsorted(seg, estart[_pinches(inverted, x, y, key, first, last)])] = True
    # Start each cycle at its top-left east segment; cycles in that segment's order.
    lead_key = np.where(sside == _EAST, sy * (w + 1) + sx, np.iinfo(np.int64).max)
    lead = np.minimum.reduceat(lead_key, sfirst)
    shift = np.flatnonzero(lead_key == np.repeat(lead, nseg)) - sfirst
    order = np.argsort(lead)
    size = nseg[order]
    start = np.cumsum(size) - size
    perm = np.arange(len(sx)) + np.repeat(sfirst[order] + shift[order] - start, size)
    perm -= np.where(perm >= np.repeat(sfirst[order] + size, size), np.repeat(size, size), 0)
    sx, sy, pinch = sx[perm], sy[perm], pinch[perm]
    _, nxt = _closed_steps(start, size, len(sx))
    cross = sx * sy[nxt] - sx[nxt] * sy
    # A hole's cycle belongs to the component whose hole border is its parent contour.
    cycle_of_contour = np.full(len(parent), -1, dtype=np.int64)
    cycle_of_contour[kept[order]] = np.arange(len(order))
    # A component's cycle encloses its other loops (holes reached through pinches), so its
    # signed area is > 0; every loop of a hole's cycle runs counter-clockwise (< 0).
    hole = np.add.reduceat(cross, start) < 0
    owner = np.arange(len(order), dtype=np.int64)
    owner[hole] = cycle_of_contour[parent[kept[order]]][hole]
    return Loops(sx, sy, cross, pinch, start, size, owner)


def _pinches(inverted: npt.NDArray[np.uint8], x: I64, y: I64, key: I64, first: I64,
             last: I64) -> I64:
    """The chain pixels entered through a pinch: a diagonal step between two background pixels
    whose two flanking pixels are foreground (the first flank is known from the scan)."""
    i = np.flatnonzero(_FLANK[key])
    w = inverted.shape[1]
    flank = y[i] * w + x[i] + (_FLANK_DY * w + _FLANK_DX)[key[i]]
    i = i[inverted.reshape(-1)[flank] == 0]
    c = np.searchsorted(last, i)  # the chain of each; its last pixel steps to its first
    return np.where(last[c] == i, first[c], i + 1)
