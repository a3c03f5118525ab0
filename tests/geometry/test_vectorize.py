from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmarks.geometry import blob_mask
from server.geometry import GeometryError, LabelObject, rasterize, vectorize
from server.geometry import _pixel_loops as pixel_loops
from server.geometry.topology import check_polygon, ring_area

from . import vectorize_reference as reference


def as_object(geometry: object) -> LabelObject:
    return LabelObject(id="v", type="polygon", geometry=geometry)  # type: ignore[arg-type]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 16).flatmap(
        lambda h: st.integers(1, 16).flatmap(lambda w: arrays(np.bool_, (h, w)))
    )
)
def test_detailed_vectorize_then_rasterize_is_exact(mask: np.ndarray) -> None:
    if not mask.any():
        with pytest.raises(GeometryError):
            vectorize(mask)
        return
    g = vectorize(mask)
    check_polygon(g, "g")  # every ring simple, holes inside, OGC-valid
    assert np.array_equal(rasterize(as_object(g), *mask.shape), mask)
    for part in g.parts:
        assert ring_area(part.exterior.array) > 0
        assert all(ring_area(h.array) < 0 for h in part.holes)


@st.composite
def blobby_masks(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(st.integers(40, 90)), draw(st.integers(40, 90))
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(draw(st.integers(1, 4))):
        cy, cx = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        ry, rx = draw(st.integers(8, 30)), draw(st.integers(8, 30))
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        mask = mask ^ blob if draw(st.booleans()) else mask | blob
    return mask


@settings(max_examples=40, deadline=None)
@given(blobby_masks(), st.sampled_from([0.5, 1.0, 2.0]))
def test_simplified_keeps_iou(mask: np.ndarray, tolerance: float) -> None:
    if not mask.any():
        return
    detailed = vectorize(mask)
    simple = vectorize(mask, tolerance)
    check_polygon(simple, "g")
    assert simple.vertex_count <= detailed.vertex_count
    assert iou(rasterize(as_object(simple), *mask.shape), mask) >= 0.95


def test_holes_islands_and_diagonal_pixels() -> None:
    ring = np.zeros((7, 7), dtype=bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    ring[3, 3] = True  # an island in the hole
    g = vectorize(ring)
    assert sorted((len(p.holes)) for p in g.parts) == [0, 1]
    assert np.array_equal(rasterize(as_object(g), 7, 7), ring)
    diag = np.eye(3, dtype=bool)  # pixels touching only at corners: separate parts
    g = vectorize(diag)
    assert len(g.parts) == 3
    c = np.ones((4, 4), dtype=bool)  # a C closed by a corner: part + hole touching at one point
    c[1:3, 1:3] = False
    c[3, 3] = False
    c[2, 3] = False
    c[1, 1] = True
    g = vectorize(c)
    check_polygon(g, "g")
    assert np.array_equal(rasterize(as_object(g), 4, 4), c)


def test_exact_outline_of_a_rectangle() -> None:
    m = np.zeros((5, 6), dtype=bool)
    m[1:3, 2:5] = True
    g = vectorize(m)
    assert len(g.parts) == 1
    assert sorted(map(tuple, g.parts[0].exterior.tolist())) == [(2, 1), (2, 3), (5, 1), (5, 3)]


def test_bad_input() -> None:
    with pytest.raises(GeometryError):
        vectorize(np.zeros((2, 2, 2), dtype=bool))
    g = vectorize(np.array([[0, 3], [0, 0]], dtype=np.uint8))
    assert g.parts[0].exterior.tolist() == [[1, 0], [2, 0], [2, 1], [1, 1]]


def test_holes_find_their_part_through_nesting_and_wrapping() -> None:
    # Rings inside holes inside rings, and a C-shaped hole wrapped round a peninsula of its own
    # part: each hole must land in the part whose pixels surround it (no pixel labelling).
    m = np.zeros((23, 30), dtype=bool)
    for k in range(0, 10, 2):
        m[k : 23 - k, k : 23 - k] = k % 4 == 0
    m[2:9, 24:29] = True  # a block with a C-shaped hole wrapped round a peninsula
    m[3:8, 25:28] = False
    m[5, 26:28] = True
    g = vectorize(m)
    check_polygon(g, "g")  # holes inside their own exterior
    assert np.array_equal(rasterize(as_object(g), *m.shape), m)
    for part in g.parts:  # each part on its own is one component, holes cut out
        alone = rasterize(as_object(type(g)(parts=[part])), *m.shape)
        n, _ = cv2.connectedComponents(alone.view(np.uint8), connectivity=4)
        assert n == 2 and not (alone & ~m).any()
    assert [len(p.holes) for p in g.parts] == [1, 1, 1, 0]  # parts in raster order


@settings(max_examples=40)
@given(blobby_masks())
def test_exact_outline_of_blobs_with_holes_and_islands(mask: np.ndarray) -> None:
    # Larger shapes than the 16 x 16 noise above: XORed ellipses make holes, islands in holes
    # and corner pinches; every hole must be found in its own part.
    if not mask.any():
        return
    g = vectorize(mask)
    check_polygon(g, "g")
    assert np.array_equal(rasterize(as_object(g), *mask.shape), mask)
    n, _ = cv2.connectedComponents(mask.view(np.uint8), connectivity=4)
    assert len(g.parts) == n - 1


# The OpenCV-traced outline against the previous NumPy implementation (kept in
# tests/geometry/vectorize_reference.py): the very same rings, in the same order, each from
# the same first vertex.


def assert_same_as_reference(mask: np.ndarray) -> None:
    got, want = vectorize(mask), reference.vectorize(mask)
    assert [len(p.holes) for p in got.parts] == [len(p.holes) for p in want.parts]
    for a, b in zip(got.parts, want.parts, strict=True):
        assert a.exterior.tolist() == b.exterior.tolist()
        assert [h.tolist() for h in a.holes] == [h.tolist() for h in b.holes]


@settings(max_examples=1000, deadline=None)
@given(
    st.integers(1, 24).flatmap(
        lambda h: st.integers(1, 24).flatmap(lambda w: arrays(np.bool_, (h, w)))
    ),
    st.booleans(),
)
def test_same_rings_as_the_reference_on_noise(mask: np.ndarray, invert: bool) -> None:
    mask = ~mask if invert else mask
    if mask.any():
        assert_same_as_reference(mask)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 40), st.floats(0.1, 0.9))
def test_same_rings_as_the_reference_on_random_densities(seed: int, h: int, w: int, p: float) -> None:
    # Sparse masks are full of corner pinches (diagonal pixels), dense ones of one-pixel holes.
    mask = np.random.default_rng(seed).random((h, w)) < p
    if mask.any():
        assert_same_as_reference(mask)


@settings(max_examples=60, deadline=None)
@given(blobby_masks())
def test_same_rings_as_the_reference_on_blobs(mask: np.ndarray) -> None:
    if mask.any():
        assert_same_as_reference(mask)


@pytest.mark.parametrize(
    "rows",
    [
        ["1"],
        ["1111"],
        ["1", "1", "1"],
        ["10", "01"],
        ["01", "10"],
        ["101", "010", "101"],  # every vertex a pinch
        ["0110", "1001", "1001", "0110"],  # a ring of diagonals round a hole
        ["11111", "10101", "11011", "10101", "11111"],  # holes touching at corners
        ["111111", "101101", "110011", "110011", "101101", "111111"],
        ["1111", "1001", "1011", "1111"],  # an L-shaped hole
        ["1111", "1001", "1010", "1110"],  # a C whose tips touch at a corner: part + hole
        ["0111", "1011", "1101", "1110"],  # a diagonal line of background through the part
        ["1110", "1101", "1011", "0111"],
    ],
)
def test_same_rings_as_the_reference_on_pinches(rows: list[str]) -> None:
    mask = np.array([[c == "1" for c in r] for r in rows])
    assert_same_as_reference(mask)
    if not mask.all():
        assert_same_as_reference(~mask)
    padded = np.zeros((mask.shape[0] + 4, mask.shape[1] + 6), dtype=bool)
    padded[2:-2, 3:-3] = mask
    assert_same_as_reference(padded)


def test_same_rings_as_the_reference_on_the_benchmark_mask() -> None:
    assert_same_as_reference(blob_mask())


def test_masks_of_any_size_in_turn_and_beyond_the_kept_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    # The inverted copy lives in a per-thread buffer: a smaller mask after a larger one must
    # not see the larger one's pixels, and a mask over the kept size gets a buffer of its own.
    rng = np.random.default_rng(7)
    masks = [rng.random(s) < 0.5 for s in [(60, 50), (7, 9), (61, 3), (2, 70), (60, 50)]]
    for mask in masks:
        assert_same_as_reference(mask)
    monkeypatch.setattr(pixel_loops, "_KEEP", 100)
    monkeypatch.delattr(pixel_loops._scratch, "buf", raising=False)
    for mask in masks:
        assert_same_as_reference(mask)


def test_threads_each_use_their_own_buffer() -> None:
    rng = np.random.default_rng(8)
    masks = [rng.random((int(rng.integers(20, 120)), int(rng.integers(20, 120)))) < 0.5
             for _ in range(16)]
    want = [vectorize(m) for m in masks]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(vectorize, masks))
    assert got == want
