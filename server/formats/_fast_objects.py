"""A shortcut for validating the plain boxes and points that make up most imports.

``validate(parse_object(data), policy)`` builds two pydantic models per object, checks them
and dumps them back to JSON: ~30 us per box, most of an import's CPU at 200,000 boxes.
:func:`plain_object` reaches the same result with plain checks, for the inputs where they
are exact: a ``bbox`` or ``point`` dict whose fields have the JSON types the model accepts,
that needs no snapping or clipping. Anything else (another shape, an unusual field, a value
the model would refuse, a box the policy would change) gets ``None``, and the caller takes the
general path, which gives the same errors as before. So the shortcut only ever accepts what
the general path accepts, with the same output (``tests/formats/test_fast_objects.py``
compares them on random inputs).

Pure: no I/O (like ``server/geometry``, which it stands beside; another branch adds a fast
validation path there, which this may give way to).
"""

from __future__ import annotations

import math
from typing import Any

from server.geometry.policy import Policy
from server.geometry.shapes import COORD_LIMIT

__all__ = ["plain_object"]

_KEYS = frozenset({"id", "type", "label", "geometry", "keypoints", "attributes", "rpy", "occluded", "z"})
_BOX_KEYS = frozenset({"x", "y", "w", "h"})
_POINT_KEYS = frozenset({"x", "y"})
_Z_LIMIT = 2**31
_ID_LIMIT = 64  # LabelObject.id's max_length


def _coord(value: Any) -> float | None:
    """The value as the model stores a coordinate (strict float: an int becomes a float, a
    bool is refused), or None when the model would refuse it."""
    kind = type(value)
    if kind is float:
        if math.isfinite(value) and abs(value) <= COORD_LIMIT:
            return value
        return None
    if kind is int and abs(value) <= COORD_LIMIT:
        return float(value)
    return None


def _attributes(raw: Any, policy: Policy) -> dict[str, Any] | None:
    if type(raw) is not dict:
        return None
    if len(raw) > policy.max_attributes:
        return None
    for key, value in raw.items():
        if type(key) is not str or not key or len(key) > policy.max_attribute_key_len:
            return None
        kind = type(value)
        if kind is str:
            if len(value) > policy.max_attribute_len:
                return None
        elif kind is float:
            if not math.isfinite(value):
                return None
        elif kind is not bool and kind is not int:
            return None
    return dict(raw)


def plain_object(data: Any, policy: Policy) -> dict[str, Any] | None:
    """``validate(parse_object(data), policy).model_dump(mode="json")`` for a plain box or
    point, or None when that cannot be told by the plain checks (take the general path)."""
    if type(data) is not dict or not _KEYS.issuperset(data):
        return None
    kind = data.get("type")
    if kind != "bbox" and kind != "point":
        return None
    oid, label, geometry = data.get("id"), data.get("label", ""), data.get("geometry")
    if type(oid) is not str or not 0 < len(oid) <= min(_ID_LIMIT, policy.max_id_len):
        return None
    if type(label) is not str or len(label) > policy.max_label_len:
        return None
    keypoints, rpy = data.get("keypoints", []), data.get("rpy")
    if type(keypoints) is not list or keypoints or rpy is not None:
        return None
    occluded, z = data.get("occluded", False), data.get("z", 0)
    if type(occluded) is not bool or type(z) is not int or not -_Z_LIMIT <= z < _Z_LIMIT:
        return None
    attributes = _attributes(data.get("attributes", {}), policy)
    if attributes is None or type(geometry) is not dict:
        return None
    out_geometry = _box(geometry, policy) if kind == "bbox" else _point(geometry, policy)
    if out_geometry is None:
        return None
    return {"id": oid, "type": kind, "label": label, "geometry": out_geometry, "keypoints": [],
            "attributes": attributes, "rpy": None, "occluded": occluded, "z": z}


def _box(geometry: dict[str, Any], policy: Policy) -> dict[str, float] | None:
    if geometry.keys() != _BOX_KEYS or policy.bbox_aspect is not None:
        return None  # a fixed aspect ratio snaps boxes: the general path
    x, y = _coord(geometry["x"]), _coord(geometry["y"])
    w, h = _coord(geometry["w"]), _coord(geometry["h"])
    if x is None or y is None or w is None or h is None or not (w > 0 and h > 0):
        return None
    inside = x >= 0 and y >= 0 and x + w <= policy.image_width and y + h <= policy.image_height
    if not inside and not (policy.allow_outside and not policy.fit_to_image):
        return None  # refused or clipped: the general path
    return {"x": x, "y": y, "w": w, "h": h}


def _point(geometry: dict[str, Any], policy: Policy) -> dict[str, float] | None:
    if geometry.keys() != _POINT_KEYS:
        return None
    x, y = _coord(geometry["x"]), _coord(geometry["y"])
    if x is None or y is None:
        return None
    inside = 0 <= x <= policy.image_width and 0 <= y <= policy.image_height
    if not inside and not (policy.allow_outside and not policy.fit_to_image):
        return None
    return {"x": x, "y": y}
