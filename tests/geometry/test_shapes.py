from __future__ import annotations

import numpy as np
import pytest

from server.geometry import GeometryError, LabelObject, Ring, object_to_dict, parse_object
from server.geometry.shapes import BBoxGeometry, PolygonGeometry

from .conftest import obj, square

EXAMPLES = [
    {"id": "b", "type": "bbox", "geometry": {"x": 1, "y": 2, "w": 3, "h": 4}},
    {"id": "p", "type": "polygon", "geometry": {"parts": [{"exterior": square(0, 0, 5)}]}},
    {"id": "l", "type": "polyline", "geometry": {"points": [[0, 0], [3, 4]]}},
    {"id": "t", "type": "point", "geometry": {"x": 1.5, "y": 2.5}},
    {"id": "m", "type": "bitmap", "geometry": {"rle": {"size": [2, 2], "counts": "04"}}},
    {"id": "r", "type": "rpy", "geometry": {"roll": 1, "pitch": -2, "yaw": 370}},
]


@pytest.mark.parametrize("data", EXAMPLES, ids=lambda d: d["type"])
def test_every_type_round_trips_through_json(data: dict) -> None:
    parsed = parse_object(data)
    assert isinstance(parsed, LabelObject)
    dumped = object_to_dict(parsed)
    assert set(dumped) == {
        "id", "type", "label", "geometry", "keypoints", "attributes", "rpy", "occluded", "z"
    }  # fmt: skip
    assert parse_object(dumped) == parsed
    assert object_to_dict(parse_object(dumped)) == dumped


def test_defaults_and_full_object() -> None:
    o = parse_object(EXAMPLES[0])
    assert (o.label, o.keypoints, o.attributes, o.rpy, o.occluded, o.z) == (
        "",
        [],
        {},
        None,
        False,
        0,
    )
    full = parse_object(
        {
            **EXAMPLES[1],
            "label": "car",
            "keypoints": [{"name": "nose", "x": 1, "y": 1, "visible": False}],
            "attributes": {"color": "red", "doors": 4, "score": 0.5, "parked": True},
            "rpy": {"roll": 0, "pitch": 0, "yaw": 90},
            "occluded": True,
            "z": 3,
        }
    )
    assert full.attributes == {"color": "red", "doors": 4, "score": 0.5, "parked": True}
    assert type(full.attributes["doors"]) is int and type(full.attributes["parked"]) is bool
    assert full.keypoints[0].visible is False


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("nope", "object"),
        ({"id": "a", "type": "circle", "geometry": {}}, "object.type"),
        ({"id": "a", "type": "bbox"}, "object.geometry"),
        ({"id": "a", "type": "bbox", "geometry": []}, "object.geometry"),
        ({"id": "", "type": "point", "geometry": {"x": 1, "y": 1}}, "object.id"),
        ({"id": "a" * 65, "type": "point", "geometry": {"x": 1, "y": 1}}, "object.id"),
        ({"id": "a", "type": "point", "geometry": {"x": "1", "y": 1}}, "object.geometry.x"),
        ({"id": "a", "type": "point", "geometry": {"x": True, "y": 1}}, "object.geometry.x"),
        (
            {"id": "a", "type": "point", "geometry": {"x": float("nan"), "y": 1}},
            "object.geometry.x",
        ),
        ({"id": "a", "type": "point", "geometry": {"x": 1e300, "y": 1}}, "object.geometry.x"),
        ({"id": "a", "type": "point", "geometry": {"x": 1, "y": 1, "z": 2}}, "object.geometry.z"),
        ({"id": "a", "type": "point", "geometry": {"x": 1, "y": 1}, "extra": 1}, "object.extra"),
        (
            {"id": "a", "type": "polyline", "geometry": {"points": [[0, 0], [1, float("inf")]]}},
            "object.geometry.points",
        ),
        (
            {"id": "a", "type": "polygon", "geometry": {"parts": [{"exterior": [[0, 0, 0]]}]}},
            "object.geometry.parts.0.exterior",
        ),
        (
            {
                "id": "a",
                "type": "point",
                "geometry": {"x": 1, "y": 1},
                "keypoints": [{"name": "k", "x": 0, "y": 0}],
            },
            "object",
        ),
        (
            {
                "id": "a",
                "type": "bbox",
                "geometry": {"x": 1, "y": 1, "w": 1, "h": 1},
                "attributes": {"k": [1]},
            },
            "object.attributes.k",
        ),
        (
            {"id": "a", "type": "bitmap", "geometry": {"rle": {"size": [2, 2], "counts": "05"}}},
            "object.geometry.rle",
        ),
        ({"id": "a", "type": "rpy", "geometry": {"roll": 1, "pitch": 2}}, "object.geometry.yaw"),
        ({"id": "a", "type": "point", "geometry": {"x": 1, "y": 1}, "z": 2**40}, "object.z"),
    ],
)
def test_structural_errors_name_the_field(data: object, field: str) -> None:
    with pytest.raises(GeometryError) as err:
        parse_object(data)
    assert err.value.field == field
    assert err.value.message
    assert str(err.value).startswith(field)


def test_ring_is_immutable_and_compares_by_value() -> None:
    r = Ring([[0, 0], [1, 2]])
    assert r == Ring(np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert r != Ring([[0, 0], [1, 3]])
    assert hash(r) == hash(Ring([[0, 0], [1, 2]]))
    with pytest.raises(ValueError, match="read-only"):
        r.array[0, 0] = 5
    assert r.insert(1, 5, 5).tolist() == [[0, 0], [5, 5], [1, 2]]
    assert r.delete(0).tolist() == [[1, 2]]
    assert r.replace(0, 9, 9).tolist() == [[9, 9], [1, 2]]
    assert r.tolist() == [[0, 0], [1, 2]]


def test_direct_construction_checks_geometry_type() -> None:
    o = LabelObject(id="a", type="bbox", geometry={"x": 0, "y": 0, "w": 1, "h": 1})  # type: ignore[arg-type]
    assert isinstance(o.geometry, BBoxGeometry)
    with pytest.raises(ValueError, match="geometry of a polygon"):
        LabelObject(id="a", type="polygon", geometry=BBoxGeometry(x=0, y=0, w=1, h=1))
    p = obj("polygon", {"parts": [{"exterior": square(0, 0, 2), "holes": []}]})
    assert isinstance(p.geometry, PolygonGeometry) and p.geometry.vertex_count == 4
