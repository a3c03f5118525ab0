from __future__ import annotations

import cv2
import numpy as np
import pytest

from server.geometry import GeometryError, smart_select


def scene(size: int = 200) -> np.ndarray:
    rng = np.random.default_rng(7)
    img = (rng.random((size, size, 3)) * 40 + 30).astype(np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 4, (40, 200, 230), -1)
    return img


def disc(size: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] + 0.5
    return (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (size / 4) ** 2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_selects_the_object_in_the_rect() -> None:
    m = smart_select(scene(), (30, 30, 140, 140), [], [])
    assert m.dtype == np.bool_ and m.shape == (200, 200)
    assert iou(m, disc()) > 0.9
    assert not m[:30].any() and not m[:, :30].any() and not m[170:].any()  # limited to the rect


def test_strokes_are_hard_labels_and_refine() -> None:
    img = scene()
    first = smart_select(img, (30, 30, 140, 140), [[[100, 100]]], [])
    bg = [[[100, 60], [100, 140]]]  # a background stroke across the disc
    second = smart_select(
        img, (30, 30, 140, 140), [[[70, 100]]], bg, previous=first, brush_radius=2
    )
    assert not second[70:130, 99:101].any()
    assert second[100, 70]
    fg_outside = [[[40, 40], [45, 45]]]  # foreground stroke on plain background
    third = smart_select(img, (30, 30, 140, 140), fg_outside, [], brush_radius=2)
    assert third[42, 42]


def test_large_rects_are_downscaled_and_still_follow_the_object() -> None:
    # Speed: benchmarks/geometry.py ("smart select, 1000x1000 rect").
    img = scene(1200)
    m = smart_select(img, (0, 0, 1200, 1200), [], [])
    assert m.shape == (1200, 1200)
    assert iou(m, disc(1200)) > 0.85


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image": np.zeros((10, 10), np.uint8)}, "image"),
        ({"rect": (0, 0, 0, 5)}, "rect"),
        ({"rect": (500, 500, 5, 5)}, "rect"),
        ({"rect": "abc"}, "rect"),
        ({"foreground_strokes": [[[1, 2, 3]]]}, "foreground_strokes.0"),
        ({"background_strokes": [[[float("nan"), 1]]]}, "background_strokes.0"),
        ({"foreground_strokes": 5}, "foreground_strokes"),
        ({"previous": np.zeros((3, 3), bool)}, "previous"),
        ({"brush_radius": 0}, "brush_radius"),
    ],
)
def test_bad_input(kwargs: dict, field: str) -> None:
    args = {
        "image": scene(50),
        "rect": (5, 5, 30, 30),
        "foreground_strokes": [],
        "background_strokes": [],
    }
    args.update(kwargs)
    with pytest.raises(GeometryError) as err:
        smart_select(**args)
    assert err.value.field == field
