from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from server.geometry import GeometryError, LabelObject, rasterize, vectorize
from server.geometry.topology import check_polygon, ring_area


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
