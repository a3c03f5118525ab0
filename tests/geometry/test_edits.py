from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from server.geometry import (
    EditResult,
    GeometryError,
    LabelObject,
    Policy,
    edit,
    object_to_dict,
    op_to_dict,
    parse_op,
)

from .conftest import obj, polygon, square

P = Policy(image_width=50, image_height=40)


def merged(objects: Mapping[str, LabelObject], result: EditResult) -> dict[str, LabelObject]:
    out = dict(objects)
    for oid, new in result.changes.items():
        if new is None:
            out.pop(oid, None)
        else:
            out[oid] = new
    return out


def round_trip(
    objects: dict[str, LabelObject], op: Any, policy: Policy = P
) -> dict[str, LabelObject]:
    """Apply op, undo with its inverse (sent over JSON), check the undo is exact."""
    result = edit(objects, op, policy)
    after = merged(objects, result)
    inverse = parse_op(op_to_dict(result.inverse))
    undone = merged(after, edit(after, inverse, policy))
    assert undone == objects
    return after


def scene() -> dict[str, LabelObject]:
    return {
        "b": obj("bbox", {"x": 1, "y": 1, "w": 10, "h": 5}, oid="b"),
        "p": polygon([{"exterior": square(20, 5, 10)}], oid="p"),
        "t": obj("point", {"x": 3, "y": 3}, oid="t"),
    }


def test_create_delete_and_edits_round_trip() -> None:
    objs = scene()
    new = {"id": "n", "type": "polyline", "geometry": {"points": [[0, 0], [5, 5]]}}
    after = round_trip(objs, {"kind": "create", "object": new})
    assert "n" in after
    assert "b" not in round_trip(objs, {"kind": "delete", "object_id": "b"})
    round_trip(objs, {"kind": "move_vertex", "object_id": "p", "index": 0, "x": 22, "y": 6})
    round_trip(objs, {"kind": "set_label", "object_id": "t", "label": "x"})


def test_batch_is_one_undo_step() -> None:
    objs = scene()
    op = {
        "kind": "batch",
        "ops": [
            {"kind": "set_z", "object_id": "b", "z": 5},
            {"kind": "delete", "object_id": "t"},
            {
                "kind": "create",
                "object": {"id": "t", "type": "point", "geometry": {"x": 9, "y": 9}},
            },
            {"kind": "translate", "object_id": "p", "dx": 1, "dy": 1},
        ],
    }
    after = round_trip(objs, op)
    assert after["b"].z == 5 and after["t"].geometry.model_dump() == {"x": 9, "y": 9}
    result = edit(objs, op, P)
    assert set(result.changes) == {"b", "t", "p"} and result.inverse.kind == "batch"


def test_batch_errors_name_the_failing_op_and_change_nothing() -> None:
    objs = scene()
    op = {
        "kind": "batch",
        "ops": [{"kind": "set_z", "object_id": "b", "z": 5}, {"kind": "delete", "object_id": "zz"}],
    }
    with pytest.raises(GeometryError) as err:
        edit(objs, op, P)
    assert err.value.field == "op.ops.1.object_id"
    assert objs["b"].z == 0


def test_rasterize_all_converts_boxes_and_polygons_only() -> None:
    objs = scene()
    after = round_trip(objs, {"kind": "rasterize_all"})
    assert (
        after["b"].type == "bitmap" and after["p"].type == "bitmap" and after["t"].type == "point"
    )
    result = edit(objs, {"kind": "rasterize_all"}, P)
    assert set(result.changes) == {"b", "p"}
    assert result.inverse.kind == "batch" and len(result.inverse.ops) == 2
    assert edit({}, {"kind": "rasterize_all"}, P).changes == {}


def test_clipped_results_undo_by_replace() -> None:
    fit = Policy(image_width=50, image_height=40, fit_to_image=True)
    objs = scene()
    result = edit(objs, {"kind": "translate", "object_id": "p", "dx": 25, "dy": 0}, fit)
    g = result.changes["p"].geometry  # type: ignore[union-attr]
    assert g.parts[0].exterior.array[:, 0].max() == 50  # type: ignore[union-attr]
    assert result.inverse.kind == "replace"
    round_trip(objs, {"kind": "translate", "object_id": "p", "dx": 25, "dy": 0}, fit)
    round_trip(objs, {"kind": "move_box", "object_id": "b", "x": 45, "y": 1, "w": 10, "h": 5}, fit)
    snap = Policy(image_width=50, image_height=40, bbox_aspect=1.0)
    square_box = {"b": obj("bbox", {"x": 1, "y": 1, "w": 6, "h": 6}, oid="b")}
    after = round_trip(
        square_box, {"kind": "move_box", "object_id": "b", "x": 1, "y": 1, "w": 8, "h": 4}, snap
    )
    assert after["b"].geometry.model_dump() == {"x": 1, "y": 1, "w": 8, "h": 8}
    # Only creating or resizing snaps: an older box keeps its shape through other edits.
    result = edit(objs, {"kind": "set_z", "object_id": "b", "z": 1}, snap)
    assert result.changes["b"].geometry == objs["b"].geometry  # type: ignore[union-attr]
    result = edit(objs, {"kind": "translate", "object_id": "b", "dx": 1, "dy": 1}, snap)
    assert result.changes["b"].geometry.model_dump()["h"] == 5  # type: ignore[union-attr]


def test_image_level_errors() -> None:
    objs = scene()
    with pytest.raises(GeometryError) as err:
        edit(objs, {"kind": "create", "object": object_to_dict(objs["b"])}, P)
    assert err.value.field == "op.object.id"
    with pytest.raises(GeometryError) as err:
        edit(objs, {"kind": "set_z", "object_id": "nope", "z": 1}, P)
    assert err.value.field == "op.object_id"
    full = Policy(image_width=50, image_height=40, max_objects=3)
    with pytest.raises(GeometryError, match="at most 3"):
        edit(objs, {"kind": "create", "object": {**object_to_dict(objs["t"]), "id": "x"}}, full)
    few = Policy(image_width=50, image_height=40, max_batch_ops=1)
    with pytest.raises(GeometryError):
        edit(objs, {"kind": "batch", "ops": [{"kind": "set_z", "object_id": "b", "z": 1}] * 2}, few)
    with pytest.raises(GeometryError) as err:
        edit(
            objs,
            {
                "kind": "create",
                "object": {"id": "o", "type": "point", "geometry": {"x": 99, "y": 1}},
            },
            P,
        )
    assert err.value.field == "object.geometry"


def test_edit_accepts_models_and_json() -> None:
    objs = scene()
    op = parse_op({"kind": "set_occluded", "object_id": "b", "occluded": True})
    assert edit(objs, op, P).changes == edit(objs, op_to_dict(op), P).changes
