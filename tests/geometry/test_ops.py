from __future__ import annotations

from typing import Any

import pytest

from server.geometry import GeometryError, op_to_dict, parse_op
from server.geometry.ops import OP_MODELS

from .conftest import square

OBJ = {"id": "a", "type": "point", "geometry": {"x": 1, "y": 2}}
EXAMPLES: list[dict[str, Any]] = [
    {"kind": "create", "object": OBJ},
    {"kind": "delete", "object_id": "a"},
    {"kind": "replace", "object_id": "a", "object": OBJ},
    {"kind": "replace_geometry", "object_id": "a", "geometry": {"x": 3, "y": 4}},
    {
        "kind": "replace_geometry",
        "object_id": "a",
        "type": "bbox",
        "geometry": {"x": 0, "y": 0, "w": 1, "h": 1},
    },
    {"kind": "move_box", "object_id": "a", "x": 1, "y": 2, "w": 3, "h": 4},
    {"kind": "translate", "object_id": "a", "dx": 1, "dy": -2},
    {"kind": "move_vertex", "object_id": "a", "part": 0, "hole": None, "index": 2, "x": 1, "y": 1},
    {"kind": "insert_vertex", "object_id": "a", "part": 1, "hole": 0, "index": 0, "x": 1, "y": 1},
    {"kind": "remove_vertex", "object_id": "a", "part": 0, "hole": None, "index": 3},
    {"kind": "add_part", "object_id": "a", "exterior": square(0, 0, 5)},
    {"kind": "add_hole", "object_id": "a", "part": 0, "ring": square(1, 1, 1)},
    {"kind": "remove_part", "object_id": "a", "part": 1},
    {"kind": "remove_hole", "object_id": "a", "part": 0, "hole": 0},
    {"kind": "set_label", "object_id": "a", "label": "car"},
    {
        "kind": "set_attributes",
        "object_id": "a",
        "attributes": {"k": "v", "n": 1, "f": 0.5, "b": True},
    },
    {
        "kind": "set_keypoint",
        "object_id": "a",
        "keypoint": {"name": "k", "x": 1, "y": 1, "visible": True},
    },
    {"kind": "remove_keypoint", "object_id": "a", "name": "k"},
    {"kind": "set_rpy", "object_id": "a", "rpy": {"roll": 1, "pitch": 2, "yaw": 3}},
    {"kind": "set_rpy", "object_id": "a", "rpy": None},
    {"kind": "set_occluded", "object_id": "a", "occluded": True},
    {"kind": "set_z", "object_id": "a", "z": 7},
    {"kind": "brush", "object_id": "a", "mode": "erase", "points": [[1, 1], [5, 5]], "radius": 2},
    {"kind": "fill", "object_id": "a", "x": 3, "y": 3},
    {"kind": "rasterize", "object_id": "a"},
    {"kind": "rasterize_all"},
    {"kind": "vectorize", "object_id": "a", "simplify": None},
    {
        "kind": "batch",
        "ops": [{"kind": "set_z", "object_id": "a", "z": 1}, {"kind": "delete", "object_id": "a"}],
    },
]


def test_every_kind_has_an_example() -> None:
    assert {e["kind"] for e in EXAMPLES} == set(OP_MODELS)


@pytest.mark.parametrize("data", EXAMPLES, ids=lambda d: d["kind"])
def test_ops_round_trip_through_json(data: dict[str, Any]) -> None:
    op = parse_op(data)
    assert op.kind == data["kind"]
    dumped = op_to_dict(op)
    assert parse_op(dumped) == op
    assert op_to_dict(parse_op(dumped)) == dumped
    assert parse_op(op) is op


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "op"),
        ({}, "op.kind"),
        ({"kind": "explode"}, "op.kind"),
        ({"kind": "delete"}, "op.object_id"),
        ({"kind": "delete", "object_id": ""}, "op.object_id"),
        ({"kind": "delete", "object_id": "a", "extra": 1}, "op.extra"),
        ({"kind": "move_vertex", "object_id": "a", "index": -1, "x": 1, "y": 1}, "op.index"),
        ({"kind": "move_vertex", "object_id": "a", "index": 0, "x": float("nan"), "y": 1}, "op.x"),
        ({"kind": "move_vertex", "object_id": "a", "index": 0, "x": "1", "y": 1}, "op.x"),
        (
            {
                "kind": "create",
                "object": {"id": "a", "type": "point", "geometry": {"x": "1", "y": 1}},
            },
            "op.object.geometry.x",
        ),
        ({"kind": "replace_geometry", "object_id": "a", "geometry": [1]}, "op.geometry"),
        ({"kind": "brush", "object_id": "a", "points": [[0, 0]], "radius": 0}, "op.radius"),
        (
            {"kind": "brush", "object_id": "a", "points": [[0, 0]], "radius": 1, "mode": "paint"},
            "op.mode",
        ),
        ({"kind": "batch", "ops": [{"kind": "batch", "ops": []}]}, "op.ops"),
        ({"kind": "batch", "ops": [{"kind": "set_z", "object_id": "a", "z": "1"}]}, "op.ops.0.z"),
        ({"kind": "batch", "ops": "x"}, "op.ops"),
    ],
)
def test_bad_ops_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(GeometryError) as err:
        parse_op(data)
    assert err.value.field == field
