from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks._hub_heavy import RADIUS, SIDE, heaviest_stroke
from server.geometry import GeometryError, Policy, apply, rle_decode, rle_encode
from server.geometry import _bitmap_ops as bitmap_ops
from server.geometry._bitmap_ops import brush, flood_fill

from . import brush_reference as reference
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


# The run-painting brush against the previous one (kept in tests/geometry/brush_reference.py),
# which tests every pixel of every segment's box with the same float64 formula: the very same
# pixels, ties included (integer and half-integer points at radii 0.5, 1, 1.5, ...).

TIE_RADII = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 6.5, 7.0, 10.0, 12.5, 20.0]


def coordinate(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(lo, hi),
        st.integers(int(lo), int(hi)).map(float),
        st.integers(int(2 * lo), int(2 * hi)).map(lambda v: v / 2),
    )


@st.composite
def strokes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float, bool]:
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    n = draw(st.integers(1, 6))
    pts = [[draw(coordinate(-15, w + 15)), draw(coordinate(-15, h + 15))] for _ in range(n)]
    if n > 1 and draw(st.booleans()):
        pts[draw(st.integers(1, n - 1))] = list(pts[0])  # a repeated point
    radius = draw(st.one_of(st.sampled_from(TIE_RADII), st.floats(0.05, 30)))
    seed = draw(st.integers(0, 2**32 - 1))
    mask = np.random.default_rng(seed).random((h, w)) < draw(st.floats(0, 1))
    return mask, np.array(pts), radius, draw(st.booleans())


def assert_same_as_reference(mask: np.ndarray, pts: np.ndarray, radius: float, draw: bool) -> None:
    got = brush(mask, pts, radius, draw)
    assert np.array_equal(got, reference.brush(mask, pts, radius, draw))
    assert got.shape == mask.shape and got.dtype == np.bool_


@contextmanager
def tuned(**values: int) -> Iterator[None]:
    """The brush's batch sizes and thresholds set to ``values`` (small ones run every
    batching, band and merge path on small strokes; ``_THIN=0, _SMALL=0, _FEW=0`` sends every
    box through the chords)."""
    old = {name: getattr(bitmap_ops, name) for name in values}
    for name, value in values.items():
        setattr(bitmap_ops, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(bitmap_ops, name, value)


# Each of the brush's ways through a stroke: box by box (a few small boxes), pixel by pixel
# (small strokes, thin boxes), through the chords.
ROUTES = [{}, {"_FEW": 0}, {"_FEW": 0, "_SMALL": 0}, {"_FEW": 0, "_SMALL": 0, "_THIN": 0}]


@settings(max_examples=400, deadline=None)
@given(strokes(), st.sampled_from(ROUTES))
def test_brush_same_as_the_reference(
    stroke: tuple[np.ndarray, np.ndarray, float, bool], route: dict[str, int]
) -> None:
    with tuned(**route):
        assert_same_as_reference(*stroke)


@settings(max_examples=300, deadline=None)
@given(strokes())
def test_brush_same_as_the_reference_through_the_chords(
    stroke: tuple[np.ndarray, np.ndarray, float, bool],
) -> None:
    with tuned(_THIN=0, _SMALL=0, _FEW=0):
        assert_same_as_reference(*stroke)


@settings(max_examples=60, deadline=None)
@given(strokes())
def test_brush_same_as_the_reference_in_tiny_batches(
    stroke: tuple[np.ndarray, np.ndarray, float, bool],
) -> None:
    with tuned(_THIN=0, _SMALL=0, _FEW=0, _PAIRS=5, _PIXELS=3, _BAND=8, _MERGE=4):
        assert_same_as_reference(*stroke)


@pytest.mark.parametrize("route", ROUTES)
def test_brush_same_as_the_reference_on_near_degenerate_strokes(route: dict[str, int]) -> None:
    rng = np.random.default_rng(5)
    m = rng.random((60, 70)) < 0.3
    cases = [
        [[3.5, 20.5], [60.5, 20.5 + 1e-9]],  # all but horizontal: rows at distance ~radius
        [[3.5, 20.5], [60.5, 20.5 - 1e-13]],
        [[30.5, 2.0], [30.5 + 1e-9, 55.0]],  # all but vertical
        [[20.0, 20.0], [20.0 + 1e-9, 20.0 + 1e-9]],  # shorter than any pixel
        [[20.0, 20.0], [20.0 + 1e-170, 20.0]],  # its squared length underflows to 0
        [[-1e7, 30.5], [1e7, 30.5]],  # across, from the coordinate limit
        [[-1e7, -1e7], [1e7, 1e7 + 3.0]],
        [[35.0, -500.0], [35.0, 500.0], [-400.0, 30.0], [600.0, 31.0]],
        [[-50.0, -50.0]],  # off the image
        [[10.0, 10.0], [10.0, 10.0], [10.0, 10.0]],
        [[5.0, 5.0], [50.0, 40.0], [5.0, 5.0]],  # back along itself
    ]
    with tuned(**route):
        for pts in cases:
            for radius in [0.5, 1.0, 1.5, 2.5, 7.0, 9.75, 25.0]:
                for draw in (True, False):
                    assert_same_as_reference(m, np.array(pts), radius, draw)


def test_brush_same_as_the_reference_on_the_benchmark_stroke_scaled_down() -> None:
    # benchmarks/_hub_heavy.heaviest_stroke: 383 points 10 px apart at radius 500 on 100 MP;
    # here at a tenth of the scale, and its first points at full scale on a crop.
    pts = np.array(heaviest_stroke("o")["points"], dtype=np.float64)
    assert len(pts) > 300
    small = np.zeros((1000, 1000), dtype=bool)
    assert_same_as_reference(small, pts / 10, RADIUS / 10, True)
    crop = np.random.default_rng(3).random((1100, 1400)) < 0.5
    assert_same_as_reference(crop, pts[:12] - [0, SIDE // 2 - 550], RADIUS, False)


def test_brush_bands_runs_and_an_empty_stroke() -> None:
    m = np.zeros((300, 400), dtype=bool)
    zigzag = np.array([[10 + 30 * i, 20 if i % 2 else 280] for i in range(13)], dtype=float)
    with tuned(_BAND=1000, _MERGE=50):
        assert_same_as_reference(m, zigzag, 14.0, True)
    assert np.array_equal(brush(m, np.zeros((0, 2)), 3.0, True), m)
    for shape in [(0, 5), (5, 0), (0, 0)]:
        assert_same_as_reference(np.zeros(shape, dtype=bool), np.array([[1.0, 1.0]]), 2.0, True)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 45), st.floats(-5, 45)), min_size=1, max_size=3),
    st.integers(0, 39),
    st.integers(0, 39),
    st.integers(-2, 2),
)
def test_brush_same_as_the_reference_at_rounded_ties(
    points: list[tuple[float, float]], col: int, row: int, ulps: int
) -> None:
    # A radius whose square is within an ulp or two of the formula's squared distance to one
    # pixel centre: whether that pixel is in is down to float64 rounding, decided as before.
    pts = np.array(points)
    a, b = pts[0], pts[min(1, len(pts) - 1)]
    d = b - a
    length2 = float(d @ d)
    c = np.array([col + 0.5, row + 0.5])
    t = 0.0 if length2 == 0.0 else float(np.clip((c - a) @ d / length2, 0.0, 1.0))
    dist2 = float(np.sum((c - a - t * d) ** 2))
    if dist2 == 0.0:
        return
    radius = float(np.sqrt(dist2))
    for _ in range(abs(ulps)):
        radius = float(np.nextafter(radius, np.inf if ulps > 0 else 0.0))
    m = np.zeros((40, 40), dtype=bool)
    with tuned(_THIN=0, _SMALL=0, _FEW=0):
        assert_same_as_reference(m, pts, radius, True)
