from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.geometry import GeometryError, Policy, apply, parse_op
from server.geometry.shapes import PolygonGeometry, PolygonPart
from server.geometry.topology import check_polygon, locally_valid
from server.geometry.vertex_edits import edit_vertex

from .conftest import obj, polygon, square

grid = st.integers(0, 12).map(float)
BASE = polygon(
    [
        {
            "exterior": [[0, 0], [12, 0], [12, 12], [6, 8], [0, 12]],
            "holes": [square(2, 2, 2), [[7, 2], [10, 2], [10, 5]]],
        },
        {"exterior": square(8, 8, 4)},
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["move_vertex", "insert_vertex", "remove_vertex"]),
    st.integers(0, 1),
    st.sampled_from([None, 0, 1]),
    st.integers(0, 5),
    grid,
    grid,
)
def test_accepted_vertex_edits_leave_valid_polygons(
    kind: str, part: int, hole: int | None, index: int, x: float, y: float
) -> None:
    """The fast local check never lets an invalid ring through (shapely is the judge)."""
    if part == 1:
        hole = None
    op = {"kind": kind, "object_id": "p", "part": part, "hole": hole, "index": index}
    if kind != "remove_vertex":
        op.update(x=x, y=y)
    try:
        out = apply(BASE, op)
    except GeometryError:
        return
    assert out is not None and isinstance(out.geometry, PolygonGeometry)
    check_polygon(out.geometry, "g")


def test_local_check_defers_when_a_hole_is_swallowed() -> None:
    p = polygon([{"exterior": square(0, 0, 100), "holes": [square(60, 40, 10)]}])
    part = p.geometry.parts[0]  # type: ignore[union-attr]
    prev, old, nxt, q = (np.array(v, dtype=float) for v in ([0, 0], [100, 0], [100, 100], [20, 90]))
    swallowed = PolygonPart(exterior=part.exterior.replace(1, 20, 90), holes=part.holes)
    swept = [np.array([prev, old, q]), np.array([old, nxt, q])]
    assert not locally_valid(swallowed, -1, 1, swept, 2)
    with pytest.raises(GeometryError, match="not inside"):
        apply(p, {"kind": "move_vertex", "object_id": "p", "index": 1, "x": 20, "y": 90})
    q = np.array([95.0, 5.0])
    nudged = PolygonPart(exterior=part.exterior.replace(1, 95, 5), holes=part.holes)
    assert locally_valid(nudged, -1, 1, [np.array([prev, old, q]), np.array([old, nxt, q])], 2)


def test_fast_path_on_a_big_ring() -> None:
    n = 2000
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.c_[500 + 400 * np.cos(t), 500 + 400 * np.sin(t)]
    big = polygon([{"exterior": ring.tolist(), "holes": [square(480, 480, 40)]}])
    part = big.geometry.parts[0]  # type: ignore[union-attr]
    prev, old, nxt = ring[9], ring[10], ring[11]
    q = old - [1.0, 0.0]
    moved = PolygonPart(exterior=part.exterior.replace(10, *q), holes=part.holes)
    assert locally_valid(moved, -1, 10, [np.array([prev, old, q]), np.array([old, nxt, q])], 2)
    out = apply(big, {"kind": "move_vertex", "object_id": "p", "index": 10, "x": q[0], "y": q[1]})
    assert out is not None and out.geometry.parts[0].exterior.array[10].tolist() == q.tolist()  # type: ignore[union-attr]


def test_polyline_vertex_edits() -> None:
    line = obj("polyline", {"points": [[0, 0], [5, 5], [10, 0]]})
    out = apply(line, {"kind": "remove_vertex", "object_id": "o", "index": 1})
    assert out is not None and out.geometry.points.tolist() == [[0, 0], [10, 0]]  # type: ignore[union-attr]
    with pytest.raises(GeometryError, match="at least 2"):
        apply(out, {"kind": "remove_vertex", "object_id": "o", "index": 0})
    with pytest.raises(GeometryError):
        apply(
            line, {"kind": "move_vertex", "object_id": "o", "part": 1, "index": 0, "x": 1, "y": 1}
        )
    crossing = apply(line, {"kind": "move_vertex", "object_id": "o", "index": 1, "x": 5, "y": -5})
    assert crossing is not None


def test_policy_on_vertex_edits() -> None:
    p = polygon([{"exterior": square(10, 10, 10)}])
    strict = Policy(image_width=50, image_height=50)
    with pytest.raises(GeometryError) as err:
        apply(p, {"kind": "move_vertex", "object_id": "p", "index": 0, "x": -5, "y": 10}, strict)
    assert err.value.field == "op.x"
    fit = Policy(image_width=50, image_height=50, fit_to_image=True)
    out = apply(p, {"kind": "move_vertex", "object_id": "p", "index": 2, "x": 80, "y": 70}, fit)
    assert out is not None and out.geometry.parts[0].exterior.tolist()[2] == [50, 50]  # type: ignore[union-attr]
    loose = Policy(image_width=50, image_height=50, allow_outside=True)
    out = apply(p, {"kind": "insert_vertex", "object_id": "p", "index": 1, "x": 15, "y": -5}, loose)
    assert out is not None and len(out.geometry.parts[0].exterior) == 5  # type: ignore[union-attr]
    tiny = Policy(image_width=50, image_height=50, max_vertices=4)
    with pytest.raises(GeometryError, match="vertices"):
        apply(p, {"kind": "insert_vertex", "object_id": "p", "index": 1, "x": 15, "y": 9}, tiny)


def test_index_errors() -> None:
    p = polygon([{"exterior": square(0, 0, 5), "holes": [square(1, 1, 1)]}])
    for op, field in [
        ({"kind": "move_vertex", "object_id": "p", "index": 4, "x": 1, "y": 1}, "op.index"),
        ({"kind": "insert_vertex", "object_id": "p", "index": 5, "x": 1, "y": 1}, "op.index"),
        ({"kind": "remove_vertex", "object_id": "p", "part": 1, "index": 0}, "op.part"),
        ({"kind": "remove_vertex", "object_id": "p", "hole": 1, "index": 0}, "op.hole"),
        ({"kind": "remove_vertex", "object_id": "p", "hole": 0, "index": 9}, "op.index"),
    ]:
        with pytest.raises(GeometryError) as err:
            edit_vertex(p, parse_op(op), None)
        assert err.value.field == field
    with pytest.raises(GeometryError, match="at least 3"):
        tri = polygon([{"exterior": [[0, 0], [4, 0], [0, 4]]}])
        apply(tri, {"kind": "remove_vertex", "object_id": "p", "index": 0})
