from __future__ import annotations

import numpy as np
import pytest

from server.geometry import GeometryError, Policy, apply, rle_decode, rle_encode
from server.geometry._bitmap_ops import brush, flood_fill

from .conftest import obj


def test_brush_paints_pixels_whose_centers_are_within_radius() -> None:
    m = np.zeros((10, 10), dtype=bool)
    dot = brush(m, np.array([[5.0, 5.0]]), 1.0, True)
    assert np.argwhere(dot).tolist() == [
        [4, 4],
        [4, 5],
        [5, 4],
        [5, 5],
    ]  # centers at distance 0.707
    line = brush(m, np.array([[0.0, 2.5], [10.0, 2.5]]), 0.5, True)
    assert line[2].all() and line.sum() == 10
    erased = brush(np.ones((10, 10), bool), np.array([[0.0, 2.5], [10.0, 2.5]]), 0.5, False)
    assert not erased[2].any() and erased.sum() == 90
    assert not m.any()  # the input is not modified
    off = brush(m, np.array([[-50.0, -50.0]]), 3.0, True)
    assert not off.any()


def test_fill_closed_and_open_regions() -> None:
    m = np.zeros((8, 8), dtype=bool)
    m[1:6, 1] = m[1:6, 5] = m[1, 1:6] = m[5, 1:6] = True  # a closed square outline
    closed = flood_fill(m, 3.5, 3.5)
    assert closed[1:6, 1:6].all() and closed.sum() == 25
    open_fill = flood_fill(m, 7.5, 7.5)  # outside region: fills everything but the inside
    assert open_fill.sum() == 64 - 9
    empty = flood_fill(np.zeros((4, 4), bool), 0, 0)
    assert empty.all()  # nothing closed: the whole image
    same = flood_fill(m, 1.5, 1.5)  # seed on the foreground: no change
    assert np.array_equal(same, m)
    with pytest.raises(GeometryError):
        flood_fill(m, 8.0, 1.0)


def test_brush_and_fill_ops_on_bitmap_objects() -> None:
    m = np.zeros((20, 30), dtype=bool)
    b = obj("bitmap", {"rle": rle_encode(m)})
    pol = Policy(image_width=30, image_height=20)
    out = apply(
        b, {"kind": "brush", "object_id": "o", "points": [[5, 5], [25, 5]], "radius": 2}, pol
    )
    assert out is not None
    painted = rle_decode(out.geometry.rle.model_dump())  # type: ignore[union-attr]
    assert painted[5, 5:25].all() and not painted[10:].any()
    limited = Policy(image_width=30, image_height=20, max_brush_radius=1, max_brush_points=1)
    for op, field in [
        ({"kind": "brush", "object_id": "o", "points": [[5, 5]], "radius": 2}, "op.radius"),
        ({"kind": "brush", "object_id": "o", "points": [[5, 5], [6, 6]], "radius": 1}, "op.points"),
    ]:
        with pytest.raises(GeometryError) as err:
            apply(b, op, limited)
        assert err.value.field == field
    filled = apply(out, {"kind": "fill", "object_id": "o", "x": 1, "y": 15}, pol)
    assert filled is not None
    assert rle_decode(filled.geometry.rle.model_dump()).all()  # type: ignore[union-attr]
