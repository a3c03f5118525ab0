from __future__ import annotations

import pytest

from server.geometry import GeometryError, Policy
from server.geometry.policy import DEFAULT_SIMPLIFY_TOLERANCE


def test_from_settings_reads_the_project_keys() -> None:
    p = Policy.from_settings(
        {
            "allow_labeling_outside_image": True,
            "fit_labels_to_image": True,
            "fixed_bbox_aspect_ratio": 1.5,
            "simplify_polygons": True,
            "simplify_tolerance": 2.5,
        },
        640,
        480,
    )
    assert (p.image_width, p.image_height) == (640, 480)
    assert p.allow_outside and p.fit_to_image and p.bbox_aspect == 1.5
    assert p.simplify_tolerance == 2.5
    assert not p.must_be_inside


def test_from_settings_defaults() -> None:
    p = Policy.from_settings({}, 10, 20)
    assert not p.allow_outside and not p.fit_to_image and p.bbox_aspect is None
    assert p.simplify_tolerance == 0.0 and p.must_be_inside
    assert Policy.from_settings({"simplify_polygons": True}, 10, 20).simplify_tolerance == (
        DEFAULT_SIMPLIFY_TOLERANCE
    )
    off = Policy.from_settings({"simplify_polygons": False, "simplify_tolerance": 3}, 10, 20)
    assert off.simplify_tolerance == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image_width": 0, "image_height": 5}, "policy.image_width"),
        ({"image_width": 5, "image_height": True}, "policy.image_height"),
        ({"image_width": 5, "image_height": 5, "bbox_aspect": 0.0}, "policy.bbox_aspect"),
        ({"image_width": 5, "image_height": 5, "bbox_aspect": float("inf")}, "policy.bbox_aspect"),
        (
            {"image_width": 5, "image_height": 5, "simplify_tolerance": -1.0},
            "policy.simplify_tolerance",
        ),
    ],
)
def test_bad_policy(kwargs: dict, field: str) -> None:
    with pytest.raises(GeometryError) as err:
        Policy(**kwargs)
    assert err.value.field == field
