from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco

from server.geometry import GeometryError, rle_area, rle_bbox, rle_decode, rle_encode, rle_iou
from server.geometry.rle import counts_to_string, string_to_counts

# pycocotools (a test-only oracle) trips numpy 2's __array__ copy deprecation.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

masks = st.integers(0, 24).flatmap(
    lambda h: st.integers(0, 24).flatmap(lambda w: arrays(np.bool_, (h, w)))
)


def coco_rle(mask: np.ndarray) -> dict:
    return coco.encode(np.asfortranarray(mask.astype(np.uint8)))


@settings(max_examples=150, deadline=None)
@given(masks)
def test_encode_decode_match_pycocotools_bit_for_bit(mask: np.ndarray) -> None:
    ours = rle_encode(mask)
    ref = coco_rle(mask)
    assert ours == {"size": [int(s) for s in ref["size"]], "counts": ref["counts"].decode()}
    back = rle_decode(ours)
    assert back.shape == mask.shape and back.dtype == np.bool_
    assert np.array_equal(back, mask)
    if mask.size:
        assert np.array_equal(back, coco.decode(ref).astype(bool))


@settings(max_examples=100, deadline=None)
@given(masks.filter(lambda m: m.size > 0))
def test_area_and_bbox_match_pycocotools(mask: np.ndarray) -> None:
    ours, ref = rle_encode(mask), coco_rle(mask)
    assert rle_area(ours) == int(coco.area(ref))
    assert rle_bbox(ours) == [float(v) for v in coco.toBbox(ref)]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.data())
def test_iou_matches_pycocotools(h: int, w: int, data: st.DataObject) -> None:
    a = data.draw(arrays(np.bool_, (h, w)))
    b = data.draw(arrays(np.bool_, (h, w)))
    expected = coco.iou([coco_rle(a)], [coco_rle(b)], [0])
    value = float(np.asarray(expected).reshape(-1)[0]) if np.size(expected) else 0.0
    assert rle_iou(rle_encode(a), rle_encode(b)) == pytest.approx(value, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**31), min_size=0, max_size=40))
def test_counts_string_round_trips_any_counts(counts: list[int]) -> None:
    s = counts_to_string(counts)
    assert string_to_counts(s).tolist() == counts


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**20), min_size=1, max_size=40))
def test_counts_string_matches_pycocotools(counts: list[int]) -> None:
    # Kept within sizes pycocotools' C code handles safely (it aborted on some extreme inputs).
    total = sum(counts)
    if total == 0:
        return
    ref = coco.frPyObjects({"size": [1, total], "counts": counts}, 1, total)
    assert ref["counts"].decode() == counts_to_string(counts)


def test_large_mask_matches_pycocotools() -> None:
    rng = np.random.default_rng(3)
    mask = np.zeros((300, 400), dtype=bool)
    for _ in range(30):
        y, x, r = rng.integers(0, 300), rng.integers(0, 400), rng.integers(3, 80)
        yy, xx = np.ogrid[:300, :400]
        mask |= (yy - y) ** 2 + (xx - x) ** 2 < r * r
    mask |= rng.random(mask.shape) < 0.01
    assert rle_encode(mask)["counts"] == coco_rle(mask)["counts"].decode()


def test_uncompressed_counts_and_non_bool_masks() -> None:
    assert rle_area({"size": [2, 3], "counts": [1, 2, 3]}) == 2
    assert rle_encode(np.array([[0, 5], [7, 0]], dtype=np.uint8)) == rle_encode(
        np.array([[False, True], [True, False]])
    )


@pytest.mark.parametrize(
    ("rle", "field"),
    [
        ({"size": [2, 2], "counts": "~~"}, "rle.counts"),  # outside the alphabet
        ({"size": [2, 2], "counts": "0P"}, "rle.counts"),  # ends mid-count
        ({"size": [2, 2], "counts": "5"}, "rle.counts"),  # covers 5 pixels, not 4
        ({"size": [2, 2], "counts": "é"}, "rle.counts"),
        ({"size": [2, 2], "counts": 4}, "rle.counts"),
        ({"size": [2], "counts": "4"}, "rle.size"),
        ({"size": [-1, 2], "counts": "0"}, "rle.size"),
        ({"size": [True, 2], "counts": "0"}, "rle.size"),
        ({"size": [2, 2], "counts": [1, -1, 4]}, "rle.counts"),
        ({"size": [2, 2], "counts": "nnnnnnnnnnnnnnn0"}, "rle.counts"),
        ({"size": [100000, 100000], "counts": "0"}, "rle.size"),
    ],
)
def test_bad_rle_is_a_geometry_error(rle: dict, field: str) -> None:
    with pytest.raises(GeometryError) as err:
        rle_decode(rle)
    assert err.value.field == field


def test_iou_size_mismatch_and_empty_union() -> None:
    empty = rle_encode(np.zeros((2, 2), bool))
    assert rle_iou(empty, empty) == 0.0
    with pytest.raises(GeometryError):
        rle_iou(empty, rle_encode(np.zeros((3, 2), bool)))
    assert rle_bbox(empty) == [0.0, 0.0, 0.0, 0.0]
