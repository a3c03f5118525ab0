"""The bulk path for plain objects agrees with the general one: what it accepts, the general
path accepts with the same JSON form; whatever fits_policy passes, edit() applies unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from server.geometry import (
    GeometryError,
    Policy,
    edit,
    object_to_dict,
    op_to_dict,
    parse_object,
    parse_op,
    validate,
)
from server.geometry.plain import fits_policy, plain_creates, plain_objects

# Numbers as JSON gives them, and the odd values the general path refuses.
_NUMBER = st.one_of(
    st.floats(-50, 150), st.integers(-20, 150), st.sampled_from([0, 0.0, -0.0, 1e7, -1e7, 1e7 + 1]),
    st.sampled_from([True, False, None, "1", float("inf"), float("nan"), 10**400, [1]]),
    st.floats(allow_nan=True, allow_infinity=True))
_SMALL = st.one_of(st.floats(-5, 120), st.integers(-5, 120))


def _geometry(kind: str) -> st.SearchStrategy[Any]:
    names = ("x", "y", "w", "h") if kind == "bbox" else ("x", "y")
    plain = st.fixed_dictionaries({n: _SMALL for n in names})
    odd = st.dictionaries(st.sampled_from([*names, "z", "extra"]), _NUMBER, max_size=5)
    return st.one_of(plain, plain, odd, st.just([1, 2]))


_ATTRIBUTES = st.dictionaries(
    st.text(max_size=3), st.one_of(st.text(max_size=4), st.integers(-3, 3), st.booleans(),
                                   st.floats(allow_nan=True), st.none(), st.just([1])),
    max_size=3)


@st.composite
def _items(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["bbox", "point", "bbox", "polygon", "rpy", "nope", 3]))
    item: dict[str, Any] = {
        "id": draw(st.one_of(st.text(min_size=1, max_size=8), st.just(""), st.just("x" * 65),
                             st.integers())),
        "type": kind,
        "geometry": draw(_geometry(kind if kind in ("bbox", "point") else "bbox")),
    }
    optional = {
        "label": st.one_of(st.text(max_size=5), st.none(), st.integers()),
        "keypoints": st.one_of(st.just([]), st.just([{"name": "a", "x": 1, "y": 1}]), st.none()),
        "attributes": _ATTRIBUTES,
        "rpy": st.one_of(st.none(), st.just({"roll": 0, "pitch": 0, "yaw": 0})),
        "occluded": st.one_of(st.booleans(), st.integers(0, 1)),
        "z": st.one_of(st.integers(-3, 3), st.just(2**31), st.just(-(2**31)), st.booleans(),
                       st.just(1.0)),
        "extra": st.just(1),
    }
    for key, values in optional.items():
        if draw(st.integers(0, 3)) == 0:
            item[key] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        item = draw(st.sampled_from([[], "x", None]))  # not an object at all
    return item


def _general(item: Any) -> dict[str, Any] | GeometryError:
    try:
        return object_to_dict(parse_object(item))
    except GeometryError as exc:
        return exc


@settings(max_examples=500, deadline=None)
@given(_items())
def test_an_accepted_object_is_what_the_general_path_makes_of_it(item: Any) -> None:
    fast = plain_objects([item])
    general = _general(item)
    if fast is None:
        return  # the general path decides (and names what is wrong)
    assert not isinstance(general, GeometryError), (item, general)
    # Same values, same keys in the same order, the same JSON text.
    assert fast == [general]
    assert json.dumps(fast[0]) == json.dumps(general)


def test_plain_boxes_and_points_take_the_fast_path() -> None:
    items = [{"id": "a", "type": "bbox", "geometry": {"x": 1, "y": 2.5, "w": 3, "h": 4}},
             {"id": "b", "type": "point", "label": "p", "geometry": {"x": 0, "y": 0},
              "attributes": {"n": 1, "f": 0.5, "s": "x", "b": True}, "occluded": True, "z": -2,
              "keypoints": [], "rpy": None}]
    fast = plain_objects(items)
    assert fast == [object_to_dict(parse_object(i)) for i in items]
    assert fast is not None and fast[0]["geometry"] == {"x": 1.0, "y": 2.5, "w": 3.0, "h": 4.0}
    assert fast[0]["keypoints"] is not fast[1]["keypoints"]  # fresh defaults, not one list


def test_what_is_not_plain_goes_to_the_general_path() -> None:
    box = {"id": "a", "type": "bbox", "geometry": {"x": 1, "y": 2, "w": 3, "h": 4}}
    for other in ({**box, "keypoints": [{"name": "k", "x": 1, "y": 1}]},
                  {**box, "rpy": {"roll": 0, "pitch": 0, "yaw": 0}},
                  {**box, "geometry": {"x": 1, "y": 2, "w": 0, "h": 4}},
                  {**box, "geometry": {"x": True, "y": 2, "w": 3, "h": 4}},
                  {**box, "attributes": {"a": float("nan")}},
                  {"id": "p", "type": "polygon", "geometry": {"parts": []}}):
        assert plain_objects([box, other]) is None
    assert plain_creates({"kind": "batch", "ops": []}) is None
    assert plain_creates({"kind": "batch", "ops": [{"kind": "delete", "object_id": "a"}]}) is None
    assert plain_creates({"kind": "batch", "ops": [{"kind": "create", "object": box}],
                          "extra": 1}) is None
    assert plain_creates({"kind": "create", "object": box}) is None


_POLICIES = st.builds(
    Policy, image_width=st.sampled_from([50, 100]), image_height=st.sampled_from([40, 100]),
    allow_outside=st.booleans(), fit_to_image=st.booleans(),
    bbox_aspect=st.sampled_from([None, None, 1.0]), max_objects=st.sampled_from([3, 20_000]),
    max_label_len=st.sampled_from([2, 200]), max_id_len=st.sampled_from([3, 64]),
    max_attributes=st.sampled_from([1, 64]), max_attribute_key_len=st.sampled_from([1, 64]),
    max_attribute_len=st.sampled_from([2, 1000]), max_batch_ops=st.sampled_from([2, 20_000]))


@settings(max_examples=250, deadline=None)
@given(st.lists(_items(), min_size=1, max_size=4), _POLICIES, st.integers(0, 2),
       st.sampled_from([(), ("a",), ("0",)]))
def test_a_batch_the_policy_passes_is_applied_unchanged_by_edit(
        items: list[Any], policy: Policy, count: int, taken: tuple[str, ...]) -> None:
    data = {"kind": "batch", "ops": [{"kind": "create", "object": i} for i in items]}
    plain = plain_creates(data)
    if plain is None:
        return
    assert plain.data == op_to_dict(parse_op(data))
    existing = {oid: parse_object({"id": oid, "type": "point", "geometry": {"x": 0, "y": 0}})
                for oid in taken}
    existing.update({f"other{i}": parse_object({"id": f"other{i}", "type": "point",
                                                "geometry": {"x": 0, "y": 0}})
                     for i in range(count)})
    if not fits_policy(plain.objects, policy, existing, len(existing)):
        return
    result = edit(existing, data, policy)  # must not raise
    assert [object_to_dict(o) for o in result.changes.values() if o is not None] == plain.objects
    assert op_to_dict(result.inverse) == {
        "kind": "batch", "ops": [{"object_id": o["id"], "kind": "delete"}
                                 for o in reversed(plain.objects)]}


def test_the_policy_check_refuses_what_the_general_path_would_change_or_refuse() -> None:
    p = Policy(image_width=100, image_height=80)
    box = object_to_dict(parse_object({"id": "a", "type": "bbox",
                                       "geometry": {"x": 90, "y": 0, "w": 10, "h": 80}}))
    assert fits_policy([box], p)
    assert validate(parse_object(box), p) == parse_object(box)
    over = {**box, "geometry": {**box["geometry"], "x": 90.5}}
    assert not fits_policy([over], p)  # refused: outside the image
    assert not fits_policy([over], Policy(image_width=100, image_height=80, fit_to_image=True))
    assert fits_policy([over], Policy(image_width=100, image_height=80, allow_outside=True))
    assert not fits_policy([box], Policy(image_width=100, image_height=80, bbox_aspect=2.0))
    assert not fits_policy([box, box], p)  # the same id twice
    assert not fits_policy([box], p, taken={"a"})
    assert not fits_policy([box], Policy(image_width=100, image_height=80, max_objects=3), count=3)
    point = object_to_dict(parse_object({"id": "p", "type": "point", "geometry": {"x": 100,
                                                                                   "y": 80.5}}))
    assert not fits_policy([point], p)


@settings(max_examples=300)
@given(_items())
def test_the_json_form_is_the_models_json_dump(item: Any) -> None:
    # The import (server/formats/_importing.py) stores what ``model_dump(mode="json")`` gives:
    # the fast path's dicts must be exactly that, key order included.
    fast = plain_objects([item])
    policy = Policy(image_width=100, image_height=100)
    if fast is None or not fits_policy(fast, policy):
        return
    dumped = validate(parse_object(item, "objects.0"), policy, "objects.0").model_dump(mode="json")
    assert fast == [dumped]
    assert list(fast[0]) == list(dumped)
