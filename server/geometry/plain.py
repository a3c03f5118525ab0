"""Many plain objects at once: boxes and points without keypoints or rpy, checked in bulk.

``parse_object`` builds pydantic models with Python validators, and ``validate`` checks each model
in Python: for a batch of 5,000 boxes that was most of the server's CPU (docs/performance.md,
"Bulk edits"). Here the same rules run over all objects at once: the structure in
pydantic-core's compiled validator (typed dicts, no models, no Python validators), the policy's
limits as a few loops and numpy comparisons over every coordinate.

Only a fast path: :func:`plain_objects` and :func:`plain_creates` accept a subset of what the
general path accepts, with the very same result (each object in the JSON form
``object_to_dict(validate(parse_object(item), policy))`` gives), and answer ``None`` for
anything else — an object that is not plain, that is invalid, or that the policy would clip,
snap or refuse — so the general path decides and its errors name the failing item exactly as
before. ``tests/geometry/test_plain.py`` checks that both agree on random inputs.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from .policy import Policy
from .shapes import COORD_LIMIT

__all__ = ["PlainCreates", "fits_policy", "plain_creates", "plain_objects"]

# What the general path's models accept (strict, no extra keys), for boxes and points only.
# Coordinates: finite numbers within +-COORD_LIMIT, ints made floats (pydantic's strict float);
# a box's width and height must be positive (``check_shape``).
_COORD = cs.float_schema(strict=True, allow_inf_nan=False, ge=-COORD_LIMIT, le=COORD_LIMIT)
_SIZE = cs.float_schema(strict=True, allow_inf_nan=False, gt=0, le=COORD_LIMIT)
_ATTRIBUTE = cs.union_schema([
    cs.str_schema(strict=True), cs.bool_schema(strict=True), cs.int_schema(strict=True),
    cs.float_schema(strict=True, allow_inf_nan=False)])


def _field(schema: cs.CoreSchema, default: Any = None, factory: Any = None) -> cs.TypedDictField:
    if factory is not None:
        return cs.typed_dict_field(cs.with_default_schema(schema, default_factory=factory),
                                   required=False)
    return cs.typed_dict_field(cs.with_default_schema(schema, default=default), required=False)


def _geometry(names: tuple[str, ...]) -> cs.CoreSchema:
    return cs.typed_dict_schema(
        {n: cs.typed_dict_field(_SIZE if n in "wh" else _COORD) for n in names},
        extra_behavior="forbid", strict=True)


def _object(kind: str, geometry: cs.CoreSchema) -> cs.CoreSchema:
    # Fields in LabelObject's order: the output dicts are its JSON form, key for key.
    return cs.typed_dict_schema({
        "id": cs.typed_dict_field(cs.str_schema(strict=True, min_length=1, max_length=64)),
        "type": cs.typed_dict_field(cs.literal_schema([kind])),
        "label": _field(cs.str_schema(strict=True), ""),
        "geometry": cs.typed_dict_field(geometry),
        "keypoints": _field(cs.list_schema(cs.any_schema(), max_length=0, strict=True),
                            factory=list),
        "attributes": _field(cs.dict_schema(cs.str_schema(strict=True), _ATTRIBUTE, strict=True),
                             factory=dict),
        "rpy": _field(cs.none_schema(), None),
        "occluded": _field(cs.bool_schema(strict=True), False),
        "z": _field(cs.int_schema(strict=True, ge=-(2**31), le=2**31 - 1), 0),
    }, extra_behavior="forbid", strict=True)


_PLAIN_OBJECT = cs.tagged_union_schema(
    {"bbox": _object("bbox", _geometry(("x", "y", "w", "h"))),
     "point": _object("point", _geometry(("x", "y")))},
    discriminator="type")
_OBJECTS = SchemaValidator(cs.list_schema(_PLAIN_OBJECT, strict=True))
_CREATES = SchemaValidator(cs.typed_dict_schema({
    "kind": cs.typed_dict_field(cs.literal_schema(["batch"])),
    "ops": cs.typed_dict_field(cs.list_schema(cs.typed_dict_schema({
        "kind": cs.typed_dict_field(cs.literal_schema(["create"])),
        "object": cs.typed_dict_field(_PLAIN_OBJECT),
    }, extra_behavior="forbid", strict=True), min_length=1, max_length=100_000, strict=True)),
}, extra_behavior="forbid", strict=True))


def plain_objects(items: Sequence[Any]) -> list[dict[str, Any]] | None:
    """Each item's JSON form as ``object_to_dict(parse_object(item))`` gives it, when every item
    is a plain box or point (no keypoints, no rpy; a box's width and height positive); ``None``
    when any is not (the general path then says which and why). The policy is not checked
    here: see :func:`fits_policy`."""
    try:
        return list(_OBJECTS.validate_python(items))
    except (ValidationError, RecursionError, OverflowError, ValueError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class PlainCreates:
    """A ``batch`` op of ``create`` ops of plain objects, its structure checked.

    ``data``: the op's JSON form (what ``op_to_dict(parse_op(...))`` gives), ``objects`` the
    created objects' JSON forms (inside ``data``), in order. What the objects' image allows is
    checked by :func:`fits_policy`; anything it does not pass goes to the general path
    (``server.geometry.parse_op`` and ``edit``)."""

    data: dict[str, Any]
    objects: list[dict[str, Any]]

    @property
    def kind(self) -> str:
        return "batch"

    def ids(self) -> list[str]:
        return [o["id"] for o in self.objects]


def plain_creates(data: Any) -> PlainCreates | None:
    """``data`` (untrusted JSON) as :class:`PlainCreates` when it is a batch of creates of plain
    objects and nothing else; ``None`` otherwise."""
    if not (isinstance(data, dict) and data.get("kind") == "batch"):
        return None
    try:
        checked = _CREATES.validate_python(data)
    except (ValidationError, RecursionError, OverflowError, ValueError, TypeError):
        return None
    return PlainCreates(checked, [op["object"] for op in checked["ops"]])


def fits_policy(objects: Sequence[dict[str, Any]], policy: Policy,
                taken: Container[str] = (), count: int = 0) -> bool:
    """True when creating ``objects`` (plain ones, from :func:`plain_objects` or
    :func:`plain_creates`) one after the other on an image holding ``count`` objects, none of
    whose ids is in ``taken``, passes every check of ``edit`` and ``validate`` and leaves each
    object as it is (no snapping, no clipping). False says only "not certain": the general path
    then decides (and names the failing object)."""
    n = len(objects)
    if n > policy.max_batch_ops or count + n > policy.max_objects:
        return False
    ids = [o["id"] for o in objects]
    if len(set(ids)) != n or any(oid in taken for oid in ids):
        return False
    if max(map(len, ids), default=0) > policy.max_id_len:
        return False
    if max((len(o["label"]) for o in objects), default=0) > policy.max_label_len:
        return False
    for o in objects:
        if o["attributes"] and not _attributes_fit(o["attributes"], policy):
            return False
    boxes = [o["geometry"] for o in objects if o["type"] == "bbox"]
    if boxes and policy.bbox_aspect is not None:
        return False  # snapped: the general path computes the new boxes
    if policy.allow_outside and not policy.fit_to_image:
        return True
    w, h = policy.image_width, policy.image_height
    if boxes:
        a = np.array([(g["x"], g["y"], g["w"], g["h"]) for g in boxes], dtype=np.float64)
        # The very comparisons of ``outside_field`` and ``fit_box`` (x + w in float64 too).
        if not (a[:, 0] >= 0).all() or not (a[:, 1] >= 0).all() \
                or not (a[:, 0] + a[:, 2] <= w).all() or not (a[:, 1] + a[:, 3] <= h).all():
            return False
    points = [o["geometry"] for o in objects if o["type"] == "point"]
    if points:
        p = np.array([(g["x"], g["y"]) for g in points], dtype=np.float64)
        if not ((p[:, 0] >= 0) & (p[:, 0] <= w) & (p[:, 1] >= 0) & (p[:, 1] <= h)).all():
            return False
    return True


def _attributes_fit(attributes: dict[str, Any], policy: Policy) -> bool:
    if len(attributes) > policy.max_attributes:
        return False
    for key, value in attributes.items():
        if not key or len(key) > policy.max_attribute_key_len:
            return False
        if isinstance(value, str) and len(value) > policy.max_attribute_len:
            return False
    return True
