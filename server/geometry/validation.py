"""Parsing untrusted JSON into label objects and checking them against a policy."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .clipping import fit_box, fit_object, outside_field, snap_box
from .errors import GeometryError, from_validation_error
from .policy import Policy
from .shapes import (
    GEOMETRY_MODELS,
    OBJECT_TYPES,
    BBoxGeometry,
    BitmapGeometry,
    LabelObject,
    PolygonGeometry,
    PolylineGeometry,
)
from .topology import check_polygon, check_polyline


def parse_geometry(kind: str, data: Any, field: str) -> Any:
    """The geometry model of an object type from JSON (raises GeometryError)."""
    model = GEOMETRY_MODELS.get(kind)
    if model is None:
        raise GeometryError(field, f"unknown object type {kind!r}")
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise GeometryError(field, "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, field) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise GeometryError(field, str(exc) or "invalid value") from None


def parse_object(data: Any, field: str = "object") -> LabelObject:
    """A ``LabelObject`` from untrusted JSON; only structure is checked (see ``validate``)."""
    if isinstance(data, LabelObject):
        return data
    if not isinstance(data, dict):
        raise GeometryError(field, "must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in OBJECT_TYPES:
        raise GeometryError(f"{field}.type", f"must be one of {', '.join(OBJECT_TYPES)}")
    if "geometry" not in data:
        raise GeometryError(f"{field}.geometry", "is required")
    geometry = parse_geometry(kind, data["geometry"], f"{field}.geometry")
    try:
        return LabelObject.model_validate({**data, "geometry": geometry})
    except ValidationError as exc:
        raise from_validation_error(exc, field) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise GeometryError(field, str(exc) or "invalid value") from None


def check_limits(obj: LabelObject, policy: Policy, field: str = "object") -> None:
    if len(obj.id) > policy.max_id_len:
        raise GeometryError(f"{field}.id", f"longer than {policy.max_id_len} characters")
    if len(obj.label) > policy.max_label_len:
        raise GeometryError(f"{field}.label", f"longer than {policy.max_label_len} characters")
    if len(obj.attributes) > policy.max_attributes:
        raise GeometryError(f"{field}.attributes", f"more than {policy.max_attributes} attributes")
    for key, value in obj.attributes.items():
        if not key or len(key) > policy.max_attribute_key_len:
            raise GeometryError(
                f"{field}.attributes", f"names must be 1..{policy.max_attribute_key_len} chars"
            )
        if isinstance(value, str) and len(value) > policy.max_attribute_len:
            raise GeometryError(
                f"{field}.attributes.{key}", f"longer than {policy.max_attribute_len} characters"
            )
    if len(obj.keypoints) > policy.max_keypoints:
        raise GeometryError(f"{field}.keypoints", f"more than {policy.max_keypoints} keypoints")
    names = [k.name for k in obj.keypoints]
    if len(set(names)) != len(names):
        raise GeometryError(f"{field}.keypoints", "keypoint names must be unique")
    g = obj.geometry
    if isinstance(g, BitmapGeometry):
        # Before anything decodes the mask: a few bytes of compressed counts can describe 2**28
        # pixels, which fitting onto the image would allocate. A mask may overhang the image
        # (fit_to_image crops it) but not by more than the image's own size.
        mh, mw = g.rle.size
        if mh > 2 * policy.image_height or mw > 2 * policy.image_width:
            raise GeometryError(
                f"{field}.geometry.rle.size",
                f"a mask may be at most twice the image size [{policy.image_height}, "
                f"{policy.image_width}] in each direction, got {g.rle.size}",
            )
    if isinstance(g, PolygonGeometry | PolylineGeometry) and g.vertex_count > policy.max_vertices:
        raise GeometryError(
            f"{field}.geometry", f"more than {policy.max_vertices} vertices ({g.vertex_count})"
        )


def check_shape(obj: LabelObject, field: str = "object") -> None:
    """Geometric validity that does not depend on the image."""
    g = obj.geometry
    if isinstance(g, BBoxGeometry):
        if not (g.w > 0 and g.h > 0):
            raise GeometryError(f"{field}.geometry", "box width and height must be positive")
    elif isinstance(g, PolygonGeometry):
        check_polygon(g, f"{field}.geometry")
    elif isinstance(g, PolylineGeometry):
        check_polyline(g.points, f"{field}.geometry.points")


def apply_policy(
    obj: LabelObject, policy: Policy, field: str = "object", snap: bool = True
) -> LabelObject:
    """Snap boxes and clip or reject off-image shapes; the same object if nothing changed."""
    w, h = policy.image_width, policy.image_height
    g = obj.geometry
    if isinstance(g, BBoxGeometry) and policy.bbox_aspect is not None and snap:
        snapped = snap_box(g, policy.bbox_aspect)
        if policy.fit_to_image:
            snapped = fit_box(snapped, w, h, policy.bbox_aspect)
        if snapped is not g:
            obj = obj.model_copy(update={"geometry": snapped})
    if policy.fit_to_image:
        return fit_object(obj, w, h)
    if isinstance(g, BitmapGeometry) and g.rle.size != [h, w]:
        raise GeometryError(
            f"{field}.geometry.rle.size", f"must equal the image size [{h}, {w}], got {g.rle.size}"
        )
    if not policy.allow_outside:
        where = outside_field(obj, w, h)
        if where is not None:
            raise GeometryError(field + where[len("object") :], "lies outside the image")
    return obj


def validate(
    obj: LabelObject, policy: Policy, field: str = "object", snap: bool = True
) -> LabelObject:
    """Check ``obj`` fully; return it, or a clipped/snapped copy when the policy says so.

    ``snap=False`` leaves a box's aspect ratio alone (edits that neither create nor resize it).
    """
    check_limits(obj, policy, field)
    check_shape(obj, field)
    return apply_policy(obj, policy, field, snap)
