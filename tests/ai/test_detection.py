"""The detector's pure parts: views and tiles of large images, targets, NMS, storing and
loading (a corrupted row is refused)."""

from __future__ import annotations

import numpy as np
import pytest

from server.ai.detection import (
    SIZE,
    STRIDE,
    TILE_ABOVE,
    Detected,
    Detector,
    cell_features,
    iou,
    load_detector,
    nms,
    targets,
    view_boxes,
    views,
)
from server.ai.errors import ModelError


def detector(labels: tuple[str, ...] = ("a", "b"), dim: int = 6, seed: int = 0) -> Detector:
    rng = np.random.default_rng(seed)
    n = len(labels) + 1
    return Detector(labels, rng.normal(size=(n, dim)).astype(np.float32),
                    rng.normal(size=n).astype(np.float32),
                    rng.normal(size=(4, dim)).astype(np.float32),
                    rng.normal(size=4).astype(np.float32), 0.4)


def test_nms_keeps_the_best_of_overlapping_boxes_per_label() -> None:
    a = Detected("x", 0.9, 0, 0, 10, 10)
    b = Detected("x", 0.8, 1, 1, 10, 10)
    c = Detected("y", 0.7, 1, 1, 10, 10)
    d = Detected("x", 0.6, 50, 50, 10, 10)
    assert nms([b, d, a, c]) == [a, c, d]
    assert iou(a, a) == 1.0 and iou(a, d) == 0.0


def test_small_images_are_one_view_and_large_ones_get_four_overlapping_tiles() -> None:
    assert views(400, 300) == [(0, 0, 400, 300)]
    big = views(TILE_ABOVE * 2, TILE_ABOVE)
    assert big[0] == (0, 0, TILE_ABOVE * 2, TILE_ABOVE) and len(big) == 5
    for x, y, w, h in big[1:]:  # tiles cover the image, each a bit more than half of it
        assert 0 <= x and x + w <= TILE_ABOVE * 2 and 0 <= y and y + h <= TILE_ABOVE
        assert w > TILE_ABOVE and h > TILE_ABOVE // 2
    assert {(x, y) for x, y, _, _ in big[1:]} == {
        (0, 0), (TILE_ABOVE * 2 - big[1][2], 0), (0, TILE_ABOVE - big[1][3]),
        (TILE_ABOVE * 2 - big[1][2], TILE_ABOVE - big[1][3])}


def test_view_boxes_keep_boxes_mostly_inside_scaled_to_the_network_input() -> None:
    boxes = [("a", 10.0, 20.0, 40.0, 40.0), ("b", 610.0, 10.0, 40.0, 50.0)]
    assert view_boxes(boxes, (0, 0, 640, 640)) == [
        ("a", 5.0, 10.0, 20.0, 20.0), ("b", 305.0, 5.0, 15.0, 25.0)]  # b: 3/4 inside, clipped
    assert view_boxes(boxes, (0, 0, 400, 400)) == [("a", 8.0, 16.0, 32.0, 32.0)]
    assert view_boxes(boxes, (630, 0, 400, 400)) == []  # half of b is not enough
    assert view_boxes(boxes, (600, 0, 400, 400)) == [("b", 8.0, 8.0, 32.0, 40.0)]


def test_targets_mark_the_cells_near_a_box_centre() -> None:
    cls, reg = targets([(1, 96.0, 96.0, 64.0, 64.0)], SIZE // 16, SIZE // 16)
    cells = np.flatnonzero(cls)
    assert cls[cells].tolist() == [2] * len(cells) and 1 <= len(cells) <= 9
    # The box's centre (128, 128) is the corner of four cells: each regresses onto it.
    assert np.allclose(np.abs(reg[cells, :2]), 0.5) and np.allclose(reg[cells, 2:], np.log(4.0))


@pytest.mark.parametrize(("h", "w"), [(SIZE // STRIDE, SIZE // STRIDE), (7, 5)])
def test_detecting_from_the_maps_finds_what_the_cells_find(h: int, w: int) -> None:
    rng = np.random.default_rng(4)
    d = detector(("a", "b", "c"), dim=16 + 24, seed=2)
    map16 = rng.normal(size=(16, h, w)).astype(np.float16)  # as the maps are kept
    map32 = rng.normal(size=(24, (h + 1) // 2, (w + 1) // 2)).astype(np.float16)
    rect = (40, 30, 500, 420)
    expected = d.detect(cell_features(map16, map32), h, w, rect, 0.05)
    got = d.detect_maps(map16, map32, rect, 0.05)
    assert len(expected) >= 3 and len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert g.label == e.label
        assert (g.score, g.x, g.y, g.w, g.h) == pytest.approx((e.score, e.x, e.y, e.w, e.h),
                                                              rel=1e-4, abs=1e-4)


def test_a_detector_round_trips_and_a_corrupted_one_is_refused() -> None:
    d = detector()
    loaded = load_detector(d.describe(), list(d.labels), d.weights())
    assert loaded.labels == d.labels and loaded.threshold == pytest.approx(0.4)
    for mine, theirs in ((d.coef, loaded.coef), (d.intercept, loaded.intercept),
                         (d.reg_coef, loaded.reg_coef), (d.reg_intercept, loaded.reg_intercept)):
        assert np.array_equal(mine, theirs)
    broken = bytearray(d.weights())
    broken[5] ^= 0xFF
    with pytest.raises(ModelError, match="checksum"):
        load_detector(d.describe(), list(d.labels), bytes(broken))
    with pytest.raises(ModelError, match="bytes"):
        load_detector(d.describe(), ["a"], d.weights())  # a label fewer: the size is wrong
    with pytest.raises(ModelError, match="incomplete"):
        load_detector({"type": "detector"}, list(d.labels), d.weights())
    with pytest.raises(ModelError, match="not a detector"):
        load_detector({**d.describe(), "size": 224}, list(d.labels), d.weights())
