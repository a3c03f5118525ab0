from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.geometry import (
    GeometryError,
    LabelObject,
    Policy,
    apply,
    invert,
    object_to_dict,
    parse_object,
    parse_op,
    rasterize,
    rle_decode,
    rle_encode,
)
from server.geometry.transforms import apply_exact

from .conftest import obj, polygon, square

W, H = 40, 30
P = Policy(image_width=W, image_height=H, allow_outside=True)
coord = st.integers(0, 40).map(float) | st.floats(0, 40, allow_nan=False)
small = st.integers(1, 8)
TYPES = ("bbox", "polygon", "polyline", "point", "bitmap", "rpy")


@st.composite
def label_objects(draw: st.DrawFn, types: tuple[str, ...] = tuple(TYPES)) -> LabelObject:
    kind = draw(st.sampled_from(types))
    extra: dict[str, Any] = {
        "label": draw(st.sampled_from(["", "car", "tree"])),
        "attributes": draw(
            st.dictionaries(st.sampled_from("abc"), st.integers(0, 3) | st.booleans(), max_size=2)
        ),
        "occluded": draw(st.booleans()),
        "z": draw(st.integers(-3, 3)),
    }
    if kind in ("bbox", "polygon"):
        names = draw(st.lists(st.sampled_from(["nose", "eye", "tail"]), unique=True, max_size=2))
        extra["keypoints"] = [{"name": n, "x": draw(coord), "y": draw(coord)} for n in names]
        if draw(st.booleans()):
            extra["rpy"] = {"roll": 1.0, "pitch": 2.0, "yaw": 3.0}
    if kind == "bbox":
        g: dict[str, Any] = {"x": draw(coord), "y": draw(coord), "w": draw(small), "h": draw(small)}
    elif kind == "polygon":
        parts = []
        for _ in range(draw(st.integers(1, 2))):
            x, y, s = draw(st.integers(0, 25)), draw(st.integers(0, 15)), draw(st.integers(6, 14))
            holes = [square(x + 2, y + 2, s - 4)] if draw(st.booleans()) else []
            parts.append({"exterior": square(x, y, s), "holes": holes})
        g = {"parts": parts}
    elif kind == "polyline":
        g = {"points": draw(st.lists(st.tuples(coord, coord).map(list), min_size=2, max_size=6))}
        if len({tuple(p) for p in g["points"]}) < 2:
            g["points"] = [[0, 0], [5, 5]]
    elif kind == "point":
        g = {"x": draw(coord), "y": draw(coord)}
    elif kind == "bitmap":
        mask = np.zeros((H, W), dtype=bool)
        x, y = draw(st.integers(0, 30)), draw(st.integers(0, 20))
        mask[y : y + draw(small), x : x + draw(small)] = True
        g = {"rle": rle_encode(mask)}
    else:
        g = {"roll": draw(coord), "pitch": 0.0, "yaw": -5.0}
    return obj(kind, g, oid="o", **extra)


def _ring_address(draw: st.DrawFn, o: LabelObject) -> tuple[int, int | None, int]:
    g = o.geometry
    if o.type == "polyline":
        return 0, None, len(g.points)  # type: ignore[union-attr]
    part = draw(st.integers(0, len(g.parts) - 1))  # type: ignore[union-attr]
    p = g.parts[part]  # type: ignore[union-attr]
    hole = draw(st.sampled_from([None, *range(len(p.holes))]))
    ring = p.exterior if hole is None else p.holes[hole]
    return part, hole, len(ring)


TARGETS: dict[str, tuple[str, ...]] = {
    "delete": ("bbox", "polygon", "polyline", "point", "bitmap", "rpy"),
    "set_label": ("bbox", "polygon", "polyline", "point", "bitmap", "rpy"),
    "set_attributes": ("bbox", "polygon", "polyline", "point", "bitmap", "rpy"),
    "set_occluded": ("bbox", "polygon", "polyline", "point", "bitmap", "rpy"),
    "set_z": ("bbox", "polygon", "polyline", "point", "bitmap", "rpy"),
    "replace": ("bbox", "polygon", "polyline", "point", "bitmap", "rpy"),
    "set_keypoint": ("bbox", "polygon"),
    "remove_keypoint": ("bbox", "polygon"),
    "set_rpy": ("bbox", "polygon", "rpy"),
    "rasterize": ("bbox", "polygon"),
    "translate": ("bbox", "polygon", "polyline", "point"),
    "replace_geometry": ("bbox", "polygon", "point"),
    "move_vertex": ("polygon", "polyline"),
    "insert_vertex": ("polygon", "polyline"),
    "remove_vertex": ("polygon", "polyline"),
    "add_part": ("polygon",),
    "add_hole": ("polygon",),
    "remove_part": ("polygon",),
    "remove_hole": ("polygon",),
    "move_box": ("bbox",),
    "brush": ("bitmap",),
    "fill": ("bitmap",),
    "vectorize": ("bitmap",),
}


@st.composite
def ops_for(draw: st.DrawFn, o: LabelObject, kind: str) -> dict[str, Any]:
    op: dict[str, Any] = {"kind": kind, "object_id": o.id}
    if kind == "set_label":
        op["label"] = draw(st.text(max_size=5))
    elif kind == "set_attributes":
        op["attributes"] = {"k": draw(st.integers(0, 9) | st.text(max_size=3))}
    elif kind == "set_occluded":
        op["occluded"] = draw(st.booleans())
    elif kind == "set_z":
        op["z"] = draw(st.integers(-9, 9))
    elif kind == "replace":
        op["object"] = {**object_to_dict(o), "label": "replaced"}
    elif kind == "set_keypoint":
        op["keypoint"] = {
            "name": draw(st.sampled_from(["nose", "eye", "new"])),
            "x": draw(coord),
            "y": draw(coord),
        }
        op["index"] = draw(st.none() | st.integers(0, len(o.keypoints)))
    elif kind == "remove_keypoint":
        op["name"] = draw(st.sampled_from([k.name for k in o.keypoints] or ["none"]))
    elif kind == "set_rpy":
        op["rpy"] = {"roll": draw(coord), "pitch": 0.0, "yaw": 1.0}
        if o.type != "rpy" and draw(st.booleans()):
            op["rpy"] = None
    elif kind == "translate":
        op.update(dx=draw(st.floats(-3, 3)), dy=draw(st.floats(-3, 3)))
    elif kind == "replace_geometry":
        if o.type == "point" or draw(st.booleans()):
            op.update(type="point", geometry={"x": draw(coord), "y": draw(coord)})
        else:
            op["geometry"] = {"x": draw(coord), "y": draw(coord), "w": 2.0, "h": 3.0}
            op["type"] = "bbox"
    elif kind == "move_box":
        op.update(x=draw(coord), y=draw(coord), w=draw(small), h=draw(small))
    elif kind in ("move_vertex", "insert_vertex", "remove_vertex"):
        part, hole, n = _ring_address(draw, o)
        op.update(
            part=part,
            hole=hole,
            index=draw(st.integers(0, n if kind == "insert_vertex" else n - 1)),
        )
        if kind != "remove_vertex":
            op.update(x=draw(coord), y=draw(coord))
    elif kind == "add_part":
        x, y = draw(st.integers(0, 30)), draw(st.integers(0, 20))
        op["exterior"] = square(x, y, 5)
        op["index"] = draw(st.none() | st.integers(0, len(o.geometry.parts)))  # type: ignore[union-attr]
    elif kind == "add_hole":
        part = draw(st.integers(0, len(o.geometry.parts) - 1))  # type: ignore[union-attr]
        ext = o.geometry.parts[part].exterior.array  # type: ignore[union-attr]
        x, y = ext.min(axis=0)
        op.update(part=part, ring=[[x + 1, y + 1], [x + 2, y + 1], [x + 1, y + 2]])
    elif kind == "remove_part":
        op["part"] = draw(st.integers(0, len(o.geometry.parts) - 1))  # type: ignore[union-attr]
    elif kind == "remove_hole":
        part = draw(st.integers(0, len(o.geometry.parts) - 1))  # type: ignore[union-attr]
        op.update(
            part=part, hole=draw(st.integers(0, max(0, len(o.geometry.parts[part].holes) - 1)))
        )  # type: ignore[union-attr]
    elif kind == "brush":
        pts = draw(st.lists(st.tuples(coord, coord).map(list), min_size=1, max_size=3))
        op.update(
            points=pts,
            radius=draw(st.floats(0.3, 4)),
            mode=draw(st.sampled_from(["draw", "erase"])),
        )
    elif kind == "fill":
        op.update(x=draw(st.floats(0, W - 0.01)), y=draw(st.floats(0, H - 0.01)))
    elif kind == "vectorize":
        op["simplify"] = draw(st.sampled_from([None, True, False]))
    return op


@pytest.mark.parametrize("kind", sorted(TARGETS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_apply_then_invert_gives_back_the_original(kind: str, data: st.DataObject) -> None:
    o = data.draw(label_objects(TARGETS[kind]))
    op = parse_op(data.draw(ops_for(o, kind)))
    try:
        new = apply(o, op, P)
    except GeometryError:
        return  # an invalid edit (e.g. a vertex move that crosses a ring) changes nothing
    inverse = invert(o, op)
    assert apply(new, inverse, P) == o
    if new is not None:
        assert parse_object(object_to_dict(new)) == new


@settings(max_examples=60, deadline=None)
@given(label_objects())
def test_create_and_delete_are_inverse(o: LabelObject) -> None:
    create = parse_op({"kind": "create", "object": object_to_dict(o)})
    assert apply(None, create, P) == o
    assert apply(o, invert(None, create), P) is None
    delete = parse_op({"kind": "delete", "object_id": o.id})
    assert apply(apply(o, delete, P), invert(o, delete), P) == o


def test_vertex_ops_have_precise_inverses() -> None:
    p = polygon([{"exterior": square(0, 0, 10)}])
    move = {"kind": "move_vertex", "object_id": "p", "index": 1, "x": 12, "y": 0}
    assert invert(p, move).kind == "move_vertex"
    assert invert(p, {**move, "kind": "insert_vertex"}).kind == "remove_vertex"
    assert (
        invert(p, {"kind": "remove_vertex", "object_id": "p", "index": 1}).kind == "insert_vertex"
    )
    assert invert(p, {"kind": "translate", "object_id": "p", "dx": 1, "dy": 1}).kind == "replace"
    assert invert(p, {"kind": "set_label", "object_id": "p", "label": "x"}).label == ""


def test_translate_moves_keypoints_too() -> None:
    b = obj("bbox", {"x": 1, "y": 1, "w": 2, "h": 2}, keypoints=[{"name": "k", "x": 2, "y": 2}])
    out = apply(b, {"kind": "translate", "object_id": "o", "dx": 3, "dy": 4})
    assert out is not None and out.geometry.model_dump() == {"x": 4, "y": 5, "w": 2, "h": 2}
    assert (out.keypoints[0].x, out.keypoints[0].y) == (5, 6)


def test_rasterize_and_vectorize_ops() -> None:
    p = polygon(
        [{"exterior": square(2, 2, 10), "holes": [square(4, 4, 2)]}],
        keypoints=[{"name": "k", "x": 3, "y": 3}],
        attributes={"a": 1},
        label="car",
    )
    bitmap = apply(p, {"kind": "rasterize", "object_id": "p"}, P)
    assert bitmap is not None and bitmap.type == "bitmap" and bitmap.label == "car"
    assert bitmap.keypoints == [] and bitmap.attributes == {} and bitmap.rpy is None
    mask = rle_decode(bitmap.geometry.rle.model_dump())  # type: ignore[union-attr]
    assert mask.sum() == 100 - 4 and mask.shape == (H, W)
    back = apply(bitmap, {"kind": "vectorize", "object_id": "p"}, P)
    assert back is not None and back.type == "polygon"
    assert np.array_equal(rasterize(back, H, W), mask)
    assert len(back.geometry.parts) == 1 and len(back.geometry.parts[0].holes) == 1  # type: ignore[union-attr]
    with pytest.raises(GeometryError, match="needs the image size"):
        apply(p, {"kind": "rasterize", "object_id": "p"})


def test_wrong_target_errors() -> None:
    pt = obj("point", {"x": 1, "y": 1})
    for op, field in [
        ({"kind": "move_box", "object_id": "o", "x": 1, "y": 1, "w": 1, "h": 1}, "op.kind"),
        ({"kind": "set_label", "object_id": "other", "label": "x"}, "op.object_id"),
        ({"kind": "move_vertex", "object_id": "o", "index": 0, "x": 1, "y": 1}, "op.kind"),
        ({"kind": "brush", "object_id": "o", "points": [[1, 1]], "radius": 1}, "op.kind"),
        (
            {"kind": "set_keypoint", "object_id": "o", "keypoint": {"name": "k", "x": 1, "y": 1}},
            "op.kind",
        ),
        ({"kind": "rasterize_all"}, "op.kind"),
    ]:
        with pytest.raises(GeometryError) as err:
            apply(pt, op, P)
        assert err.value.field == field
    with pytest.raises(GeometryError):
        apply(None, {"kind": "delete", "object_id": "o"})
    with pytest.raises(GeometryError):
        apply(pt, {"kind": "create", "object": object_to_dict(pt)})


def test_policy_adjusted_results_report_inexact() -> None:
    fit = Policy(image_width=W, image_height=H, fit_to_image=True)
    b = obj("bbox", {"x": 1, "y": 1, "w": 2, "h": 2})
    new, exact = apply_exact(
        b, parse_op({"kind": "move_box", "object_id": "o", "x": 35, "y": 1, "w": 10, "h": 2}), fit
    )
    assert new is not None and new.geometry.model_dump() == {"x": 35, "y": 1, "w": 5, "h": 2}
    assert not exact
    new, exact = apply_exact(
        b, parse_op({"kind": "move_box", "object_id": "o", "x": 3, "y": 1, "w": 10, "h": 2}), fit
    )
    assert exact
