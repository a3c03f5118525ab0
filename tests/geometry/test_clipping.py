from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.geometry import GeometryError, LabelObject, Policy, rle_decode, rle_encode, validate
from server.geometry.clipping import fit_object, outside_field

from .conftest import obj, polygon

W, H = 30, 20
FIT = Policy(image_width=W, image_height=H, fit_to_image=True)
c = st.floats(-40, 70, allow_nan=False)


@st.composite
def anywhere(draw: st.DrawFn) -> LabelObject:
    kind = draw(st.sampled_from(["bbox", "polygon", "polyline", "point"]))
    kps = [{"name": "k", "x": draw(c), "y": draw(c)}] if kind in ("bbox", "polygon") else []
    if kind == "bbox":
        g: dict[str, Any] = {
            "x": draw(c),
            "y": draw(c),
            "w": draw(st.floats(0.5, 50)),
            "h": draw(st.floats(0.5, 50)),
        }
    elif kind == "polygon":
        x, y, s = draw(c), draw(c), draw(st.floats(1, 40))
        g = {"parts": [{"exterior": [[x, y], [x + s, y], [x + s / 2, y + s]]}]}
    elif kind == "polyline":
        g = {"points": [[draw(c), draw(c)], [draw(c), draw(c)], [draw(c), draw(c)]]}
    else:
        g = {"x": draw(c), "y": draw(c)}
    return obj(kind, g, keypoints=kps)


@settings(max_examples=300, deadline=None)
@given(anywhere())
def test_fitting_leaves_everything_on_the_image(o: LabelObject) -> None:
    try:
        validate(o, Policy(image_width=W, image_height=H, allow_outside=True))
    except GeometryError:
        return  # structurally invalid (e.g. a degenerate polyline)
    try:
        fitted = validate(o, FIT)
    except GeometryError as exc:
        assert "outside the image" in exc.message  # nothing of it was on the image
        return
    assert outside_field(fitted, W, H) is None
    assert validate(fitted, FIT) is fitted  # fitting is idempotent
    if outside_field(o, W, H) is None:
        assert fitted is o


def test_polygon_clip_can_split_into_parts() -> None:
    u = polygon(
        [
            {
                "exterior": [
                    [0, -15],
                    [30, -15],
                    [30, 15],
                    [20, 15],
                    [20, -5],
                    [10, -5],
                    [10, 15],
                    [0, 15],
                ]
            }
        ]
    )
    fitted = fit_object(u, 30, 15)
    assert len(fitted.geometry.parts) == 2  # type: ignore[union-attr]
    holey = polygon(
        [
            {
                "exterior": [[-5, -5], [20, -5], [20, 20], [-5, 20]],
                "holes": [[[2, 2], [6, 2], [6, 6], [2, 6]]],
            }
        ]
    )
    fitted = fit_object(holey, 30, 15)
    assert len(fitted.geometry.parts[0].holes) == 1  # type: ignore[union-attr]


def test_polyline_keeps_the_longest_piece() -> None:
    line = obj("polyline", {"points": [[1, 1], [1, 40], [5, 40], [5, 2], [25, 2]]})
    fitted = fit_object(line, 30, 20)
    pts = fitted.geometry.points.array  # type: ignore[union-attr]
    assert pts[:, 1].max() <= 20 and pts[:, 0].max() == 25


def test_bitmap_is_cropped_and_padded() -> None:
    m = np.ones((25, 10), dtype=bool)
    b = obj("bitmap", {"rle": rle_encode(m)})
    fitted = validate(b, FIT)
    out = rle_decode(fitted.geometry.rle.model_dump())  # type: ignore[union-attr]
    assert out.shape == (H, W) and out[:, :10].all() and not out[:, 10:].any()


def test_box_and_point_clamp() -> None:
    b = validate(obj("bbox", {"x": -5, "y": 15, "w": 10, "h": 10}), FIT)
    assert b.geometry.model_dump() == {"x": 0, "y": 15, "w": 5, "h": 5}
    p = validate(obj("point", {"x": -5, "y": 25}), FIT)
    assert p.geometry.model_dump() == {"x": 0, "y": 20}
    with pytest.raises(GeometryError, match="outside"):
        validate(obj("bbox", {"x": 40, "y": 0, "w": 5, "h": 5}), FIT)
    with pytest.raises(GeometryError, match="outside"):
        validate(obj("polyline", {"points": [[40, 0], [50, 5]]}), FIT)
