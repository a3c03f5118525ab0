"""The cost of an op, estimated before it runs, and the per-image limit (server/geometry/cost.py)."""

from __future__ import annotations

import itertools
import math
import pickle
from typing import Any

import numpy as np
import pytest

from server.geometry import GeometryError, Policy, TooCostly, edit, op_cost, parse_object, parse_op
from server.geometry.cost import INLINE_COST, MIN_OP_COST, brush_cost, max_op_cost
from server.geometry.edits import Loaded
from server.geometry.rle import rle_encode


def _bitmap(w: int, h: int) -> Any:
    m = np.zeros((h, w), bool)
    m[h // 4: h // 2, w // 4: w // 2] = True
    return parse_object({"id": "m", "type": "bitmap", "label": "a",
                         "geometry": {"rle": rle_encode(m)}})


def _visited(points: list[list[float]], radius: float, w: int, h: int) -> int:
    """What ``_bitmap_ops.brush`` visits, segment by segment, written out plainly."""
    pts = [np.array(p, float) for p in points]
    segments = [(pts[0], pts[0])] if len(pts) == 1 else list(itertools.pairwise(pts))
    total = 0
    for a, b in segments:
        x0 = max(math.floor(min(a[0], b[0]) - radius - 0.5), 0)
        x1 = min(math.ceil(max(a[0], b[0]) + radius + 0.5), w)
        y0 = max(math.floor(min(a[1], b[1]) - radius - 0.5), 0)
        y1 = min(math.ceil(max(a[1], b[1]) + radius + 0.5), h)
        total += max(x1 - x0, 0) * max(y1 - y0, 0)
    return total


@pytest.mark.parametrize("points", [[[5, 5]], [[0, 0], [30, 7], [30, 7], [99, 60]],
                                    [[-50, -50], [-10, -10]], [[10.5, 3.25], [90.75, 55.5]]])
@pytest.mark.parametrize("radius", [0.5, 3, 40])
def test_brush_cost_is_what_the_brush_visits(points: list[list[float]], radius: float) -> None:
    assert brush_cost(points, radius, 100, 64) == _visited(points, radius, 100, 64)


def test_cheap_ops_stay_under_the_inline_cost_and_pixel_ops_on_big_images_do_not() -> None:
    box = parse_object({"id": "b", "type": "bbox", "label": "a",
                        "geometry": {"x": 1, "y": 1, "w": 5, "h": 5}})
    move = parse_op({"kind": "move_box", "object_id": "b", "x": 2, "y": 2, "w": 5, "h": 5})
    assert op_cost(move, {"b": box}, 10_000, 10_000) < INLINE_COST
    big = _bitmap(4000, 3000)
    dot = parse_op({"kind": "brush", "object_id": "m", "points": [[5, 5]], "radius": 1})
    fill = parse_op({"kind": "fill", "object_id": "m", "x": 1, "y": 1})
    assert op_cost(dot, {"m": big}, 4000, 3000) >= INLINE_COST
    assert op_cost(fill, {"m": big}, 4000, 3000) >= INLINE_COST
    small = _bitmap(64, 48)
    assert op_cost(dot, {"m": small}, 64, 48) < INLINE_COST


def test_a_batch_costs_the_sum_of_its_ops_and_rasterize_all_each_shape() -> None:
    polys = {f"p{i}": parse_object({"id": f"p{i}", "type": "polygon", "label": "a", "geometry": {
        "parts": [{"exterior": [[10, 10], [110, 10], [110, 60]]}]}}) for i in range(3)}
    one = op_cost(parse_op({"kind": "rasterize", "object_id": "p0"}), polys, 1000, 1000)
    batch = parse_op({"kind": "batch", "ops": [{"kind": "rasterize", "object_id": f"p{i}"}
                                               for i in range(3)]})
    assert op_cost(batch, polys, 1000, 1000) == 3 * one
    everything = parse_op({"kind": "rasterize_all"})
    assert op_cost(everything, Loaded(polys, 3), 1000, 1000) == 3 * (one - 10 * 4)


def test_the_limit_grows_with_the_image_and_has_a_floor() -> None:
    assert max_op_cost(10, 10) == MIN_OP_COST
    assert max_op_cost(10_000, 10_000) == 4 * 10_000 * 10_000


def test_the_f3_stroke_is_refused_before_any_work() -> None:
    """Issue 15, F3: 4,000 points at radius 500 on a 4000x3000 bitmap held the loop 43 s."""
    w, h = 4000, 3000
    rng = np.random.default_rng(1)
    points = np.cumsum(rng.normal(0, 5, (4000, 2)), axis=0) + np.array([w / 2, h / 2])
    op = {"kind": "brush", "object_id": "m", "points": points.tolist(), "radius": 500}
    policy = Policy(image_width=w, image_height=h)
    with pytest.raises(TooCostly) as err:
        edit({"m": _bitmap(w, h)}, op, policy)
    assert err.value.field == "op" and "at most" in err.value.message


def test_a_big_legal_stroke_still_paints() -> None:
    """A 150-px brush dragged across a 4000x3000 image with the web app's point spacing (a
    quarter of the radius) is well within the limit."""
    w, h, r = 4000, 3000, 150.0
    xs = np.arange(200, 3800, r / 4)
    points = np.stack([xs, 1500 + 400 * np.sin(xs / 500)], 1).tolist()
    op = parse_op({"kind": "brush", "object_id": "m", "points": points, "radius": r})
    assert op_cost(op, {"m": _bitmap(w, h)}, w, h) < max_op_cost(w, h)


def test_the_brush_radius_is_capped_by_the_image_diagonal() -> None:
    policy = Policy(image_width=30, image_height=40)
    assert policy.brush_radius_limit == 50
    op = {"kind": "brush", "object_id": "m", "points": [[5, 5]], "radius": 51}
    with pytest.raises(GeometryError) as err:
        edit({"m": _bitmap(30, 40)}, op, policy)
    assert err.value.field == "op.radius"


def test_errors_and_loaded_objects_cross_a_process_boundary() -> None:
    err = pickle.loads(pickle.dumps(TooCostly("op", "too much")))
    assert type(err) is TooCostly and (err.field, err.message) == ("op", "too much")
    loaded = pickle.loads(pickle.dumps(Loaded({"m": _bitmap(8, 8)}, 7)))
    assert len(loaded) == 7 and list(loaded) == ["m"]
