from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.geometry import GeometryError, rasterize

from .conftest import obj, polygon, square


def test_pixel_centers_decide_and_edges_are_half_open() -> None:
    box = obj("bbox", {"x": 1, "y": 1, "w": 2, "h": 1})
    m = rasterize(box, 4, 5)
    assert m.dtype == np.bool_ and m.shape == (4, 5)
    assert np.argwhere(m).tolist() == [[1, 1], [1, 2]]
    # Boundaries through pixel centers: left/top in, right/bottom out.
    half = obj("bbox", {"x": 0.5, "y": 0.5, "w": 1, "h": 1})
    assert np.argwhere(rasterize(half, 3, 3)).tolist() == [[0, 0]]
    assert not rasterize(obj("bbox", {"x": 0.6, "y": 0.6, "w": 0.8, "h": 0.8}), 3, 3).any()


def test_box_and_polygon_agree() -> None:
    for x, y, w, h in [(1, 2, 3, 4), (0.3, 0.7, 5.5, 2.2), (-3, -3, 5, 5), (4, 4, 20, 20)]:
        b = obj("bbox", {"x": x, "y": y, "w": w, "h": h})
        p = polygon([{"exterior": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]}])
        assert np.array_equal(rasterize(b, 8, 9), rasterize(p, 8, 9))


def test_holes_parts_and_orientation() -> None:
    cw = square(0, 0, 6)
    ccw = cw[::-1]
    for ext, hole in [(cw, square(2, 2, 2)), (ccw, square(2, 2, 2)), (cw, square(2, 2, 2)[::-1])]:
        m = rasterize(polygon([{"exterior": ext, "holes": [hole]}]), 6, 6)
        assert m.sum() == 36 - 4 and not m[2:4, 2:4].any()
    overlap = polygon([{"exterior": square(0, 0, 4)}, {"exterior": square(2, 2, 4)}])
    assert rasterize(overlap, 8, 8).sum() == 16 + 16 - 4  # union


def test_triangle_matches_center_sampling() -> None:
    tri = polygon([{"exterior": [[0.2, 0.1], [9.7, 2.3], [3.3, 8.9]]}])
    m = rasterize(tri, 10, 10)
    yy, xx = np.mgrid[:10, :10] + 0.5
    import shapely

    poly = shapely.Polygon([[0.2, 0.1], [9.7, 2.3], [3.3, 8.9]])
    expected = shapely.contains_xy(poly, xx, yy)
    assert np.array_equal(m, expected)


def test_big_polygon_is_chunked_correctly() -> None:
    t = np.linspace(0, 2 * np.pi, 3000, endpoint=False)
    r = 180 + 60 * np.sin(t * 31)
    ring = np.c_[200 + r * np.cos(t), 200 + r * np.sin(t)]
    p = polygon([{"exterior": ring.tolist()}])
    import server.geometry.raster as raster

    full = rasterize(p, 400, 400)
    old = raster._CHUNK
    raster._CHUNK = 1000
    try:
        assert np.array_equal(rasterize(p, 400, 400), full)
    finally:
        raster._CHUNK = old


def test_bitmap_and_errors() -> None:
    from server.geometry import rle_encode

    mask = np.eye(4, 5, dtype=bool)
    b = obj("bitmap", {"rle": rle_encode(mask)})
    assert np.array_equal(rasterize(b, 4, 5), mask)
    with pytest.raises(GeometryError):
        rasterize(b, 5, 5)
    with pytest.raises(GeometryError):
        rasterize(obj("point", {"x": 1, "y": 1}), 4, 4)
    assert rasterize(obj("bbox", {"x": 1, "y": 1, "w": 2, "h": 2}), 0, 0).shape == (0, 0)


def center_winding(rings: list[tuple[np.ndarray, int]], h: int, w: int) -> np.ndarray:
    """The pixel-center rule spelled out pixel by pixel: the reference for the run-based fill.

    For every row center line and edge crossing it (half-open in y), the winding of every pixel
    whose center lies on or right of the crossing changes by the edge's signed weight."""
    acc = np.zeros((h, w), dtype=np.int64)
    for ring, weight in rings:
        for (x0, y0), (x1, y1) in zip(ring, np.roll(ring, -1, axis=0), strict=True):
            if y0 == y1:
                continue
            sign = weight if y1 > y0 else -weight
            slope = (x1 - x0) / (y1 - y0)
            for i in range(h):
                yc = i + 0.5
                if min(y0, y1) <= yc < max(y0, y1):
                    xc = x0 + (yc - y0) * slope
                    for j in range(w):
                        if j + 0.5 >= xc:
                            acc[i, j] += sign
    return acc != 0


_coord = st.one_of(
    st.integers(-3, 23).map(float),  # on pixel corners
    st.integers(-6, 46).map(lambda v: v / 2),  # through pixel centers: the half-open cases
    st.floats(-3, 23, allow_nan=False, width=32),
)
_ring = st.lists(st.tuples(_coord, _coord), min_size=3, max_size=9)


@settings(max_examples=150)
@given(st.lists(st.tuples(_ring, st.lists(_ring, max_size=2)), min_size=1, max_size=3),
       st.integers(1, 20), st.integers(1, 20))
def test_fast_fill_is_pixel_identical_to_center_sampling(
    parts: list[tuple[list[tuple[float, float]], list[list[tuple[float, float]]]]], h: int, w: int
) -> None:
    # Any rings at all (self-crossing, holes outside, overlapping parts): rasterize needs no
    # valid shape, and the runs must equal the pixel-by-pixel rule everywhere.
    from server.geometry.raster import _hole_signs, rasterize_polygon
    from server.geometry.shapes import PolygonGeometry, PolygonPart, Ring

    geo = PolygonGeometry.model_construct(parts=[
        PolygonPart.model_construct(exterior=Ring(np.asarray(ext, dtype=np.float64)),
                                    holes=[Ring(np.asarray(hl, dtype=np.float64)) for hl in holes])
        for ext, holes in parts])
    expected = center_winding(_hole_signs(geo), h, w)
    assert np.array_equal(rasterize_polygon(geo, h, w), expected)
