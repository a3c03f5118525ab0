"""Outlines of many polygons at once: exactly what the per-polygon path gives each of them."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from server.formats import _outline_batch
from server.formats._outline_batch import Outline, outlines


def _ring(rng: random.Random, cx: float, cy: float, r: float, n: int) -> list[list[float]]:
    """A star-shaped ring (vertices sorted by angle), possibly with spikes and pinches."""
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n + rng.uniform(0, 0.5 / n)
        rr = r * rng.uniform(0.2, 1.0)
        pts.append([round(cx + rr * math.cos(t), rng.choice((0, 1, 3))), round(cy + rr * math.sin(t), rng.choice((0, 1, 3)))])
    return pts


def _polygon(rng: random.Random, w: int, h: int) -> dict[str, Any]:
    """Random parts (some off the image, some overlapping), some with holes, some
    self-intersecting, some tiny."""
    parts = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        cx, cy = rng.uniform(-10, w + 10), rng.uniform(-10, h + 10)
        r = rng.choice((0.4, 3.0, 12.0, 30.0))
        ext = _ring(rng, cx, cy, r, rng.randint(3, 14))
        if rng.random() < 0.15:
            rng.shuffle(ext)  # self-intersecting
        holes = []
        if rng.random() < 0.3:
            holes.append(_ring(rng, cx, cy, r / 3, rng.randint(3, 8)))
        parts.append({"exterior": ext, "holes": holes})
    return {"parts": parts}


def _same(a: Outline | None, b: Outline | None) -> bool:
    if a is None or b is None:
        return a is b
    if (a.rings is None) != (b.rings is None) or (a.area, a.bbox, a.origin) != (b.area, b.bbox, b.origin):
        return False
    if a.rings is not None:
        return a.rings == b.rings
    assert a.mask is not None and b.mask is not None
    return np.array_equal(a.mask, b.mask)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("canvas_pixels", [3000, 1 << 22])
def test_batch_is_the_per_polygon_outline(seed: int, canvas_pixels: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice([(64, 48), (90, 90), (40, 70)]) for _ in range(300)]
    geometries = [_polygon(rng, w, h) for w, h in sizes]
    batch = outlines(geometries, sizes, canvas_pixels=canvas_pixels)
    single = [_outline_batch._single(g, w, h) for g, (w, h) in zip(geometries, sizes, strict=True)]
    assert all(_same(a, b) for a, b in zip(batch, single, strict=True))
    kinds = {"empty" if o is None else "holes" if o.rings is None else "multi" if len(o.rings) > 1 else "one"
             for o in single}
    assert kinds == {"empty", "holes", "multi", "one"}  # the sample covers every case


def test_large_polygons_take_the_per_polygon_path_in_the_same_list() -> None:
    big = {"parts": [{"exterior": [[0, 0], [900, 10], [880, 700], [3, 650]], "holes": [[[100, 100], [200, 100], [150, 180]]]}]}
    many = {"parts": [{"exterior": [[50 + 40 * math.cos(t / 100), 50 + 40 * math.sin(t / 100)] for t in range(700)]}]}
    small = {"parts": [{"exterior": [[1.5, 1.5], [9.2, 2.0], [5.0, 8.7]]}]}
    sizes = [(1000, 800), (100, 100), (20, 20)]
    batch = outlines([big, many, small], sizes)
    assert all(_same(a, _outline_batch._single(g, w, h))
               for a, g, (w, h) in zip(batch, [big, many, small], sizes, strict=True))
    assert batch[0] is not None and batch[0].rings is None and batch[0].area > 500_000
    assert batch[2] is not None and batch[2].rings is not None and len(batch[2].rings) == 1


def test_nothing_to_trace() -> None:
    assert outlines([], []) == []
    off = {"parts": [{"exterior": [[-9, -9], [-2, -9], [-2, -2]]}]}
    thin = {"parts": [{"exterior": [[1.1, 1.1], [1.3, 1.1], [1.3, 9.0]]}]}  # no pixel center inside
    assert outlines([off, thin], [(10, 10), (10, 10)]) == [None, None]
