"""Exact pixel outlines: rasterizing them gives back the mask, with pycocotools and with ours."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from server.formats._outline import crop, outline, polygon_pixels
from server.geometry.raster import rasterize_polygon
from server.geometry.shapes import PolygonGeometry, PolygonPart, Ring


def blobs(seed: int, h: int = 40, w: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.random((h, w)) < 0.35
    m[rng.integers(0, h), :] = True  # a long run, and holes where the noise leaves them
    return m


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("seed", range(12))
def test_outline_rasterizes_back_to_the_mask(seed: int) -> None:
    mask = blobs(seed)
    h, w = mask.shape
    small, (ox, oy) = crop(mask)
    rings = outline(small, (ox, oy))
    ours = np.zeros_like(mask)
    for exterior, holes in rings:
        geo = PolygonGeometry(parts=[PolygonPart(exterior=Ring(np.asarray(exterior, dtype=np.float64)),
                                                 holes=[Ring(np.asarray(hh, dtype=np.float64)) for hh in holes])])
        ours |= rasterize_polygon(geo, h, w)
    assert np.array_equal(ours, mask)
    # pycocotools (annToMask's rasterizer) on the exteriors of hole-free components.
    for exterior, holes in rings:
        if holes:
            continue
        flat = [float(v) for pt in exterior for v in pt]
        theirs = coco_mask.decode(coco_mask.frPyObjects([flat], h, w))[:, :, 0].astype(bool)
        geo = PolygonGeometry(parts=[PolygonPart(exterior=Ring(np.asarray(exterior, dtype=np.float64)))])
        assert np.array_equal(theirs, rasterize_polygon(geo, h, w))
    # No repeated or collinear vertices: every corner turns.
    for ring in (r for ext, holes in rings for r in [ext, *holes]):
        pts = np.asarray(ring)
        d1, d2 = pts - np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0) - pts
        assert (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0] != 0).all()


def test_polygon_pixels_is_clipped_to_the_image() -> None:
    geo = {"parts": [{"exterior": [[-5.0, -5.0], [10.0, -5.0], [10.0, 10.0], [-5.0, 10.0]], "holes": []}]}
    mask, origin, bbox = polygon_pixels(geo, 8, 6)
    assert origin == (0, 0) and mask.shape == (6, 8) and mask.all()
    assert bbox == [0.0, 0.0, 8.0, 6.0]
    empty, _, _ = polygon_pixels({"parts": [{"exterior": [[20, 20], [30, 20], [30, 30]]}]}, 8, 6)
    assert empty.size == 0
