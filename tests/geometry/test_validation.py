from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.geometry import GeometryError, Policy, parse_object, parse_op, rle_encode, validate
from server.geometry.rle import counts_to_string

from .conftest import obj, polygon, square

P = Policy(image_width=100, image_height=80)


def rejects(o: Any, field: str, policy: Policy = P, match: str = "") -> GeometryError:
    with pytest.raises(GeometryError) as err:
        validate(o, policy)
    assert err.value.field == field
    assert match in err.value.message
    return err.value


def test_valid_objects_come_back_unchanged() -> None:
    for o in (
        obj("bbox", {"x": 0, "y": 0, "w": 100, "h": 80}),
        polygon([{"exterior": square(10, 10, 30), "holes": [square(15, 15, 5)]}]),
        obj("polyline", {"points": [[0, 0], [100, 80], [0, 80], [100, 0]]}),  # may cross itself
        obj("point", {"x": 100, "y": 80}),
        obj("bitmap", {"rle": rle_encode(np.ones((80, 100), bool))}),
        obj("rpy", {"roll": 0, "pitch": 0, "yaw": 0}),
    ):
        assert validate(o, P) is o


def test_vertex_minimums() -> None:
    rejects(
        polygon([{"exterior": [[0, 0], [1, 1]]}]),
        "object.geometry.parts.0.exterior",
        match="3 distinct",
    )
    rejects(polygon([{"exterior": [[0, 0], [1, 1], [0, 0]]}]), "object.geometry.parts.0.exterior")
    rejects(polygon([{"exterior": [[0, 0], [1, 1], [2, 2]]}]), "object.geometry.parts.0.exterior")
    rejects(obj("polyline", {"points": [[1, 1]]}), "object.geometry.points")
    rejects(obj("polyline", {"points": [[1, 1], [1, 1]]}), "object.geometry.points")
    rejects(polygon([]), "object.geometry.parts", match="at least one part")
    rejects(
        polygon([{"exterior": square(0, 0, 50), "holes": [[[1, 1], [2, 2]]]}]),
        "object.geometry.parts.0.holes.0",
    )


def test_self_crossing_and_self_touching_rings() -> None:
    bowtie = [[0, 0], [10, 10], [10, 0], [0, 10]]
    rejects(polygon([{"exterior": bowtie}]), "object.geometry.parts.0.exterior", match="crosses")
    pinched = [[0, 0], [10, 0], [5, 5], [10, 10], [0, 10], [5, 5]]
    rejects(polygon([{"exterior": pinched}]), "object.geometry.parts.0.exterior")
    rejects(
        polygon([{"exterior": square(0, 0, 50), "holes": [bowtie]}]),
        "object.geometry.parts.0.holes.0",
    )


def test_holes_inside_their_part_and_not_overlapping() -> None:
    rejects(
        polygon([{"exterior": square(0, 0, 10), "holes": [square(5, 5, 10)]}]),
        "object.geometry.parts.0.holes.0",
        match="not inside",
    )
    rejects(
        polygon([{"exterior": square(0, 0, 40), "holes": [square(5, 5, 10), square(10, 10, 10)]}]),
        "object.geometry.parts.0.holes",
        match="overlap",
    )
    # A hole may touch the exterior or another hole at a single point (OGC).
    touching = [[0, 20], [5, 18], [5, 22]]
    ok = polygon(
        [{"exterior": square(0, 0, 40), "holes": [touching, square(10, 10, 5), square(15, 15, 5)]}]
    )
    assert validate(ok, P) is ok


def test_overlapping_parts_are_allowed() -> None:
    o = polygon([{"exterior": square(0, 0, 20)}, {"exterior": square(10, 10, 20)}])
    assert validate(o, P) is o


def test_boxes_need_positive_size() -> None:
    rejects(obj("bbox", {"x": 1, "y": 1, "w": 0, "h": 5}), "object.geometry", match="positive")
    rejects(obj("bbox", {"x": 1, "y": 1, "w": 5, "h": -1}), "object.geometry")


def test_limits() -> None:
    small = Policy(
        image_width=100, image_height=80, max_vertices=5, max_label_len=3, max_attributes=1,
        max_attribute_len=2, max_attribute_key_len=3, max_keypoints=1, max_id_len=2,
    )  # fmt: skip
    rejects(
        polygon([{"exterior": square(0, 0, 5), "holes": [[[1, 1], [2, 1], [2, 2]]]}]),
        "object.geometry",
        small,
        "vertices",
    )
    rejects(obj("point", {"x": 1, "y": 1}, label="abcd"), "object.label", small)
    rejects(obj("point", {"x": 1, "y": 1}, oid="abc"), "object.id", small)
    rejects(obj("point", {"x": 1, "y": 1}, attributes={"a": 1, "b": 2}), "object.attributes", small)
    rejects(obj("point", {"x": 1, "y": 1}, attributes={"a": "abc"}), "object.attributes.a", small)
    rejects(obj("point", {"x": 1, "y": 1}, attributes={"long": 1}), "object.attributes", small)
    kps = [{"name": "a", "x": 1, "y": 1}, {"name": "b", "x": 1, "y": 1}]
    rejects(obj("bbox", {"x": 1, "y": 1, "w": 1, "h": 1}, keypoints=kps), "object.keypoints", small)
    dup = [{"name": "a", "x": 1, "y": 1}, {"name": "a", "x": 2, "y": 1}]
    rejects(
        obj("bbox", {"x": 1, "y": 1, "w": 1, "h": 1}, keypoints=dup),
        "object.keypoints",
        match="unique",
    )


def test_bitmap_size_must_equal_image_size() -> None:
    rejects(obj("bitmap", {"rle": {"size": [2, 2], "counts": "04"}}), "object.geometry.rle.size")


@pytest.mark.parametrize(
    ("o", "field"),
    [
        (obj("bbox", {"x": -1, "y": 0, "w": 5, "h": 5}), "object.geometry"),
        (obj("bbox", {"x": 96, "y": 0, "w": 5, "h": 5}), "object.geometry"),
        (obj("point", {"x": 100.5, "y": 0}), "object.geometry"),
        (polygon([{"exterior": square(90, 70, 20)}]), "object.geometry.parts.0.exterior"),
        (obj("polyline", {"points": [[0, 0], [0, 81]]}), "object.geometry.points"),
        (
            obj(
                "bbox", {"x": 1, "y": 1, "w": 5, "h": 5}, keypoints=[{"name": "k", "x": -1, "y": 0}]
            ),
            "object.keypoints.0",
        ),
    ],
)
def test_outside_the_image(o: Any, field: str) -> None:
    rejects(o, field, match="outside")
    assert validate(o, Policy(image_width=100, image_height=80, allow_outside=True)) is o
    fitted = validate(o, Policy(image_width=100, image_height=80, fit_to_image=True))
    assert fitted is not o


def test_bbox_aspect_snaps_and_fits() -> None:
    pol = Policy(image_width=100, image_height=80, bbox_aspect=2.0)
    out = validate(obj("bbox", {"x": 10, "y": 10, "w": 20, "h": 20}), pol)
    assert out.geometry.model_dump() == {"x": 10, "y": 10, "w": 40, "h": 20}
    out = validate(obj("bbox", {"x": 10, "y": 10, "w": 30, "h": 5}), pol)
    assert out.geometry.model_dump() == {"x": 10, "y": 10, "w": 30, "h": 15}
    again = validate(out, pol)
    assert again is out  # snapping is idempotent
    with pytest.raises(GeometryError):
        validate(obj("bbox", {"x": 80, "y": 10, "w": 20, "h": 20}), pol)  # grows off the image
    fit = Policy(image_width=100, image_height=80, bbox_aspect=2.0, fit_to_image=True)
    out = validate(obj("bbox", {"x": 80, "y": 70, "w": 300, "h": 20}), fit)
    g = out.geometry.model_dump()
    assert g["w"] / g["h"] == pytest.approx(2.0)
    assert g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 100 and g["y"] + g["h"] <= 80


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "id",
        "type",
        "geometry",
        "label",
        "keypoints",
        "attributes",
        "rpy",
        "z",
        "parts",
        "exterior",
        "holes",
        "x",
        "y",
        "w",
        "h",
        "rle",
        "size",
        "counts",
        "points",
        "kind",
        "object_id",
        "object",
        "index",
        "ops",
    ]
)
kinds = st.sampled_from(
    [
        "bbox",
        "polygon",
        "polyline",
        "point",
        "bitmap",
        "rpy",
        "create",
        "move_vertex",
        "batch",
        "brush",
        "replace_geometry",
    ]
)
shaped = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | kinds | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, shaped))
def test_arbitrary_json_only_raises_geometry_error(data: Any) -> None:
    for parse in (parse_object, parse_op):
        try:
            result = parse(data)
        except GeometryError as exc:
            assert isinstance(exc.field, str) and exc.field
            assert isinstance(exc.message, str)
            continue
        json.dumps(result.model_dump(mode="json"))
        if parse is parse_object:
            try:
                validate(result, P)
            except GeometryError:
                pass


def test_an_oversized_mask_is_refused_before_it_is_decoded() -> None:
    """A few bytes of counts describing a 16384x16384 mask (F7): fitting it onto the image would
    decode half a gigabyte; the size is compared with the image's first."""
    huge = obj("bitmap", {"rle": {"size": [16384, 16384], "counts": counts_to_string([16384 ** 2])}})
    fit = Policy(image_width=100, image_height=80, fit_to_image=True)
    tracemalloc.start()
    try:
        rejects(huge, "object.geometry.rle.size", fit, "at most twice the image size")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024
    # Overhanging masks up to twice the image size are still cropped onto it.
    hang = obj("bitmap", {"rle": {"size": [160, 200], "counts": counts_to_string([160 * 200])}})
    assert validate(hang, fit).geometry.rle.size == [80, 100]
