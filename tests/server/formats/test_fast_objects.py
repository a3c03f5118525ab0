"""The import's shortcut for plain boxes and points (server/formats/_fast_objects.py) against
the general path it stands for: whatever it accepts, ``validate(parse_object(...))`` accepts
with the same JSON; on everything else it declines, and the general path decides."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.formats._fast_objects import plain_object
from server.geometry.errors import GeometryError
from server.geometry.policy import Policy
from server.geometry.validation import parse_object, validate


def _general(data: Any, policy: Policy) -> dict[str, Any] | None:
    try:
        return validate(parse_object(data, "objects.0"), policy, "objects.0").model_dump(mode="json")
    except GeometryError:
        return None


_numbers = st.one_of(
    st.floats(min_value=-50, max_value=700), st.integers(min_value=-50, max_value=700),
    st.sampled_from([0.0, -0.0, 1e-9, 640.0, 480.0, 1e7, 1e7 + 1, 2**60, math.inf, -math.inf, math.nan]),
    st.booleans(), st.none(), st.text(max_size=2),
)
_strings = st.one_of(st.text(max_size=3), st.sampled_from(["", "a" * 64, "a" * 65, "b" * 201]), st.integers(),
                     st.none())
_attribute_values = st.one_of(st.text(max_size=3), st.integers(min_value=-(2**70), max_value=2**70),
                              st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                              st.lists(st.integers(), max_size=1), st.just("x" * 1_001))


@st.composite
def _objects(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["bbox", "bbox", "point", "polygon", "bitmap", 3, None]))
    keys = ("x", "y", "w", "h") if kind == "bbox" or draw(st.booleans()) else ("x", "y")
    geometry: Any = {k: draw(_numbers) for k in keys}
    if draw(st.integers(0, 9)) == 0:
        geometry = draw(st.sampled_from([None, [], "box", {**geometry, "extra": 1}]))
    data: dict[Any, Any] = {"id": draw(_strings), "type": kind, "geometry": geometry}
    if draw(st.booleans()):
        data["label"] = draw(_strings)
    if draw(st.booleans()):
        data["attributes"] = draw(st.one_of(
            st.dictionaries(st.one_of(st.text(max_size=3), st.just("k" * 65)), _attribute_values, max_size=3),
            st.just({i: 1 for i in range(2)}), st.just({f"k{i}": 1 for i in range(65)}), st.none()))
    for key, values in (("occluded", st.one_of(st.booleans(), st.integers(0, 1), st.none())),
                        ("z", st.one_of(st.integers(-(2**32), 2**32), st.booleans(), st.floats(-3, 3))),
                        ("keypoints", st.one_of(st.just([]), st.just([{"name": "a", "x": 1.0, "y": 1.0}]),
                                                st.none())),
                        ("rpy", st.one_of(st.none(), st.just({"roll": 0.0, "pitch": 0.0, "yaw": 0.0}))),
                        ("color", st.just("red"))):
        if draw(st.integers(0, 3)) == 0:
            data[key] = draw(values)
    return data


_policies = st.builds(
    Policy, image_width=st.sampled_from([640, 1, 100_000]), image_height=st.sampled_from([480, 1]),
    allow_outside=st.booleans(), fit_to_image=st.booleans(),
    bbox_aspect=st.sampled_from([None, None, 1.0, 1.5]), max_id_len=st.sampled_from([64, 3]),
    max_label_len=st.sampled_from([200, 2]), max_attributes=st.sampled_from([64, 1]),
    max_attribute_key_len=st.sampled_from([64, 2]), max_attribute_len=st.sampled_from([1_000, 2]),
)


@settings(max_examples=1_000)
@given(_objects(), _policies)
def test_accepts_only_what_the_general_path_accepts_with_the_same_json(data: Any, policy: Policy) -> None:
    fast = plain_object(data, policy)
    if fast is not None:
        assert fast == _general(data, policy)
        # The same JSON types too (an int coordinate is stored as a float, as the model does).
        assert [type(v) for v in fast["geometry"].values()] == [float] * len(fast["geometry"])


@pytest.mark.parametrize("data", [
    {"id": "b1", "type": "bbox", "label": "cat", "geometry": {"x": 1.5, "y": 2.0, "w": 10.25, "h": 3.0}},
    {"id": "cvat-1", "type": "bbox", "label": "car", "occluded": True, "z": 2,
     "attributes": {"color": "red", "doors": 4, "parked": False, "speed": 1.5},
     "geometry": {"x": 0, "y": 0, "w": 640, "h": 480}},
    {"id": "p", "type": "point", "label": "eye", "geometry": {"x": 640.0, "y": 0.0}, "keypoints": [],
     "rpy": None},
])
def test_plain_boxes_and_points_take_the_shortcut(data: dict[str, Any]) -> None:
    policy = Policy(640, 480)
    fast = plain_object(data, policy)
    assert fast is not None
    assert fast == _general(data, policy)
    assert list(fast) == ["id", "type", "label", "geometry", "keypoints", "attributes", "rpy", "occluded", "z"]


@pytest.mark.parametrize(("data", "policy"), [
    # Refused by the model or the policy: the general path names the error.
    ({"id": "b", "type": "bbox", "geometry": {"x": 600.0, "y": 0.0, "w": 50.0, "h": 1.0}}, Policy(640, 480)),
    ({"id": "b", "type": "bbox", "geometry": {"x": 0.0, "y": 0.0, "w": 0.0, "h": 1.0}}, Policy(640, 480)),
    ({"id": "", "type": "bbox", "geometry": {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0}}, Policy(640, 480)),
    ({"id": "b", "type": "bbox", "geometry": {"x": True, "y": 0.0, "w": 1.0, "h": 1.0}}, Policy(640, 480)),
    # Accepted but changed (clipped, snapped): the general path changes it.
    ({"id": "b", "type": "bbox", "geometry": {"x": 600.0, "y": 0.0, "w": 50.0, "h": 1.0}},
     Policy(640, 480, fit_to_image=True)),
    ({"id": "b", "type": "bbox", "geometry": {"x": 0.0, "y": 0.0, "w": 2.0, "h": 1.0}},
     Policy(640, 480, bbox_aspect=1.0)),
    # Shapes it does not know.
    ({"id": "p", "type": "polygon", "geometry": {"parts": [{"exterior": [[0, 0], [1, 0], [1, 1]]}]}},
     Policy(640, 480)),
])
def test_declines_what_it_cannot_tell(data: dict[str, Any], policy: Policy) -> None:
    assert plain_object(data, policy) is None
