"""Pure single-object edits: ``apply(obj, op)`` and its exact undo ``invert(obj, op)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops as o
from ._bitmap_ops import brush, flood_fill
from .errors import GeometryError
from .policy import DEFAULT_SIMPLIFY_TOLERANCE, Policy
from .raster import rasterize
from .rle import counts_to_mask, rle_counts, rle_encode
from .shapes import (
    DECORATED_TYPES,
    RLE,
    BBoxGeometry,
    BitmapGeometry,
    LabelObject,
    PointGeometry,
    PolygonGeometry,
    PolygonPart,
    PolylineGeometry,
    Ring,
    Rpy,
)
from .topology import check_part
from .validation import check_limits, check_shape, parse_geometry, validate
from .vectorize import vectorize
from .vertex_edits import edit_vertex, part_at, ring_at

#: Ops whose precise inverse (from ``invert``) holds even when the policy clamped the result.
_CLAMP_SAFE = (o.MoveVertex, o.InsertVertex, o.RemoveVertex, o.SetKeypoint)


def _need(obj: LabelObject | None, op: Any) -> LabelObject:
    if obj is None:
        raise GeometryError("op.object_id", f"no object {op.object_id!r}")
    if obj.id != op.object_id:
        raise GeometryError("op.object_id", f"op is for {op.object_id!r}, not {obj.id!r}")
    return obj


def _geometry(obj: LabelObject, cls: type, what: str) -> Any:
    if not isinstance(obj.geometry, cls):
        raise GeometryError("op.kind", f"{what} does not apply to a {obj.type}")
    return obj.geometry


#: Ops that create or resize a box, so the fixed aspect ratio applies.
_SNAPPING = (o.Create, o.ReplaceGeometry, o.MoveBox)


def _finish(naive: LabelObject, policy: Policy | None, op: Any) -> LabelObject:
    if policy is None:
        check_shape(naive)
        return naive
    return validate(naive, policy, snap=isinstance(op, _SNAPPING))


def _mask_of(obj: LabelObject) -> np.ndarray:
    g = _geometry(obj, BitmapGeometry, "a pixel edit")
    h, w, cnts = rle_counts(g.rle.model_dump())
    return counts_to_mask(cnts, h, w)


def _bitmap(obj: LabelObject, mask: np.ndarray) -> LabelObject:
    rle = rle_encode(mask)
    return obj.model_copy(update={"geometry": BitmapGeometry(rle=RLE(**rle))})


def _translate(obj: LabelObject, dx: float, dy: float) -> LabelObject:
    g = obj.geometry
    shift = np.array([dx, dy])
    new: Any
    if isinstance(g, BBoxGeometry):
        new = g.model_copy(update={"x": g.x + dx, "y": g.y + dy})
    elif isinstance(g, PointGeometry):
        new = PointGeometry(x=g.x + dx, y=g.y + dy)
    elif isinstance(g, PolylineGeometry):
        new = PolylineGeometry(points=Ring(g.points.array + shift))
    elif isinstance(g, PolygonGeometry):
        new = PolygonGeometry(
            parts=[
                PolygonPart(
                    exterior=Ring(p.exterior.array + shift),
                    holes=[Ring(h.array + shift) for h in p.holes],
                )
                for p in g.parts
            ]
        )
    else:
        raise GeometryError("op.kind", f"translate does not apply to a {obj.type}")
    kps = [k.model_copy(update={"x": k.x + dx, "y": k.y + dy}) for k in obj.keypoints]
    return obj.model_copy(update={"geometry": new, "keypoints": kps})


def _tolerance(simplify: bool | None, policy: Policy | None) -> float:
    configured = policy.simplify_tolerance if policy is not None else 0.0
    if simplify is None:
        return configured
    if simplify:
        return configured or DEFAULT_SIMPLIFY_TOLERANCE
    return 0.0


def apply_exact(
    obj: LabelObject | None, op: Any, policy: Policy | None = None
) -> tuple[LabelObject | None, bool]:
    """The result of ``op`` and whether ``invert(obj, op)`` undoes it exactly (the policy may
    have clipped or snapped the result, in which case only a ``replace`` undoes it)."""
    if isinstance(op, o.Create):
        if obj is not None:
            raise GeometryError("op.object.id", f"object {obj.id!r} already exists")
        new = _finish(op.object, policy, op)
        return new, new is op.object
    if isinstance(op, o.RasterizeAll | o.Batch):
        raise GeometryError("op.kind", f"{op.kind} works on a whole image: use edit()")
    cur = _need(obj, op)
    if isinstance(op, o.Delete):
        return None, True
    if isinstance(op, o.MoveVertex | o.InsertVertex | o.RemoveVertex):
        return edit_vertex(cur, op, policy), True
    naive = _naive(cur, op, policy)
    result = _finish(naive, policy, op)
    exact = result is naive or isinstance(op, _CLAMP_SAFE)
    return result, exact


def _naive(cur: LabelObject, op: Any, policy: Policy | None) -> LabelObject:
    """``op`` applied literally (before the policy's clipping and snapping)."""
    if isinstance(op, o.Replace):
        if op.object.id != cur.id:
            raise GeometryError("op.object.id", "must equal op.object_id")
        return op.object
    if isinstance(op, o.ReplaceGeometry):
        kind = op.type or cur.type
        geometry = parse_geometry(kind, op.geometry, "op.geometry")
        update: dict[str, Any] = {"geometry": geometry, "type": kind}
        if kind not in DECORATED_TYPES:
            update.update(keypoints=[], rpy=None)
        return cur.model_copy(update=update)
    if isinstance(op, o.MoveBox):
        _geometry(cur, BBoxGeometry, "move_box")
        return cur.model_copy(update={"geometry": BBoxGeometry(x=op.x, y=op.y, w=op.w, h=op.h)})
    if isinstance(op, o.Translate):
        return _translate(cur, op.dx, op.dy)
    if isinstance(op, o.AddPart | o.AddHole | o.RemovePart | o.RemoveHole):
        return _part_op(cur, op)
    if isinstance(op, o.SetLabel):
        return cur.model_copy(update={"label": op.label})
    if isinstance(op, o.SetAttributes):
        new = cur.model_copy(update={"attributes": dict(op.attributes)})
        if policy is not None:
            check_limits(new, policy)
        return new
    if isinstance(op, o.SetKeypoint | o.RemoveKeypoint):
        return _keypoint_op(cur, op, policy)
    if isinstance(op, o.SetRpy):
        if cur.type == "rpy":
            if op.rpy is None:
                raise GeometryError("op.rpy", "an rpy object needs roll, pitch and yaw")
            return cur.model_copy(update={"geometry": op.rpy})
        if cur.type not in DECORATED_TYPES and op.rpy is not None:
            raise GeometryError("op.kind", f"a {cur.type} cannot carry an rpy")
        return cur.model_copy(update={"rpy": op.rpy})
    if isinstance(op, o.SetOccluded):
        return cur.model_copy(update={"occluded": op.occluded})
    if isinstance(op, o.SetZ):
        return cur.model_copy(update={"z": op.z})
    if isinstance(op, o.Brush):
        if policy is not None and len(op.points) > policy.max_brush_points:
            raise GeometryError("op.points", f"more than {policy.max_brush_points} points")
        if policy is not None and op.radius > policy.brush_radius_limit:
            raise GeometryError("op.radius", f"larger than {policy.brush_radius_limit:g}")
        return _bitmap(cur, brush(_mask_of(cur), op.points.array, op.radius, op.mode == "draw"))
    if isinstance(op, o.Fill):
        return _bitmap(cur, flood_fill(_mask_of(cur), op.x, op.y))
    if isinstance(op, o.Rasterize):
        return rasterize_object(cur, policy)
    if isinstance(op, o.Vectorize):
        mask = _mask_of(cur)
        geometry = vectorize(mask, _tolerance(op.simplify, policy))
        return cur.model_copy(update={"type": "polygon", "geometry": geometry})
    raise GeometryError("op.kind", f"unsupported op {getattr(op, 'kind', op)!r}")


def rasterize_object(cur: LabelObject, policy: Policy | None) -> LabelObject:
    """A box or polygon turned into a bitmap of the image size (keypoints, attributes and rpy
    are dropped)."""
    if cur.type not in ("bbox", "polygon"):
        raise GeometryError("op.kind", f"rasterize does not apply to a {cur.type}")
    if policy is None:
        raise GeometryError("op.kind", "rasterize needs the image size (a policy)")
    mask = rasterize(cur, policy.image_height, policy.image_width)
    rle = rle_encode(mask)
    return cur.model_copy(
        update={
            "type": "bitmap",
            "geometry": BitmapGeometry(rle=RLE(**rle)),
            "keypoints": [],
            "attributes": {},
            "rpy": None,
        }
    )


def _part_op(cur: LabelObject, op: Any) -> LabelObject:
    g: PolygonGeometry = _geometry(cur, PolygonGeometry, op.kind)
    parts = list(g.parts)
    if isinstance(op, o.AddPart):
        idx = len(parts) if op.index is None else op.index
        if idx > len(parts):
            raise GeometryError("op.index", f"must be <= {len(parts)}")
        part = PolygonPart(exterior=op.exterior, holes=list(op.holes))
        check_part(part, "op")
        parts.insert(idx, part)
    elif isinstance(op, o.RemovePart):
        if op.part >= len(parts):
            raise GeometryError("op.part", f"no part {op.part}")
        if len(parts) == 1:
            raise GeometryError("op.part", "cannot remove the only part (delete the object)")
        del parts[op.part]
    else:
        if op.part >= len(parts):
            raise GeometryError("op.part", f"no part {op.part}")
        holes = list(parts[op.part].holes)
        if isinstance(op, o.AddHole):
            idx = len(holes) if op.index is None else op.index
            if idx > len(holes):
                raise GeometryError("op.index", f"must be <= {len(holes)}")
            holes.insert(idx, op.ring)
        else:
            if op.hole >= len(holes):
                raise GeometryError("op.hole", f"no hole {op.hole}")
            del holes[op.hole]
        part = PolygonPart(exterior=parts[op.part].exterior, holes=holes)
        if isinstance(op, o.AddHole):
            check_part(part, f"object.geometry.parts.{op.part}")
        parts[op.part] = part
    return cur.model_copy(update={"geometry": PolygonGeometry(parts=parts)})


def _keypoint_op(cur: LabelObject, op: Any, policy: Policy | None) -> LabelObject:
    if cur.type not in DECORATED_TYPES:
        raise GeometryError("op.kind", f"a {cur.type} cannot carry keypoints")
    kps = list(cur.keypoints)
    names = [k.name for k in kps]
    if isinstance(op, o.RemoveKeypoint):
        if op.name not in names:
            raise GeometryError("op.name", f"no keypoint {op.name!r}")
        del kps[names.index(op.name)]
    else:
        kp = op.keypoint
        if policy is not None and policy.fit_to_image:
            w, h = policy.image_width, policy.image_height
            kp = kp.model_copy(update={"x": min(max(kp.x, 0.0), w), "y": min(max(kp.y, 0.0), h)})
        if kp.name in names:
            kps[names.index(kp.name)] = kp
        else:
            idx = len(kps) if op.index is None else op.index
            if idx > len(kps):
                raise GeometryError("op.index", f"must be <= {len(kps)}")
            kps.insert(idx, kp)
    return cur.model_copy(update={"keypoints": kps})


def apply(obj: LabelObject | None, op: Any, policy: Policy | None = None) -> LabelObject | None:
    """``obj`` after ``op`` (None for no object: create takes None, delete gives None)."""
    return apply_exact(obj, o.parse_op(op), policy)[0]


def invert(obj: LabelObject | None, op: Any) -> Any:
    """The op that undoes ``op``, given ``obj`` as it was *before* ``op``."""
    op = o.parse_op(op)
    if isinstance(op, o.Create):
        return o.Delete(object_id=op.object.id)
    if isinstance(op, o.RasterizeAll | o.Batch):
        raise GeometryError("op.kind", f"{op.kind} works on a whole image: use edit()")
    cur = _need(obj, op)
    oid = cur.id
    if isinstance(op, o.Delete):
        return o.Create(object=cur)
    if isinstance(op, o.ReplaceGeometry):
        if cur.keypoints or cur.rpy is not None or op.type not in (None, cur.type):
            return o.Replace(object_id=oid, object=cur)
        return o.ReplaceGeometry(object_id=oid, geometry=cur.geometry)
    if isinstance(op, o.MoveBox):
        g = _geometry(cur, BBoxGeometry, "move_box")
        return o.MoveBox(object_id=oid, x=g.x, y=g.y, w=g.w, h=g.h)
    if isinstance(op, o.MoveVertex | o.RemoveVertex):
        ring = ring_at(cur, op)
        if op.index >= len(ring):
            raise GeometryError("op.index", f"no vertex {op.index}")
        x, y = (float(v) for v in ring.array[op.index])
        cls = o.MoveVertex if isinstance(op, o.MoveVertex) else o.InsertVertex
        return cls(object_id=oid, part=op.part, hole=op.hole, index=op.index, x=x, y=y)
    if isinstance(op, o.InsertVertex):
        return o.RemoveVertex(object_id=oid, part=op.part, hole=op.hole, index=op.index)
    if isinstance(op, o.AddPart):
        g = _geometry(cur, PolygonGeometry, "add_part")
        idx = len(g.parts) if op.index is None else op.index
        return o.RemovePart(object_id=oid, part=idx)
    if isinstance(op, o.RemovePart):
        g = _geometry(cur, PolygonGeometry, "remove_part")
        if op.part >= len(g.parts):
            raise GeometryError("op.part", f"no part {op.part}")
        p = g.parts[op.part]
        return o.AddPart(object_id=oid, exterior=p.exterior, holes=list(p.holes), index=op.part)
    if isinstance(op, o.AddHole):
        part = part_at(cur, op.part)
        idx = len(part.holes) if op.index is None else op.index
        return o.RemoveHole(object_id=oid, part=op.part, hole=idx)
    if isinstance(op, o.RemoveHole):
        part = part_at(cur, op.part)
        if op.hole >= len(part.holes):
            raise GeometryError("op.hole", f"no hole {op.hole}")
        return o.AddHole(object_id=oid, part=op.part, ring=part.holes[op.hole], index=op.hole)
    if isinstance(op, o.SetLabel):
        return o.SetLabel(object_id=oid, label=cur.label)
    if isinstance(op, o.SetAttributes):
        return o.SetAttributes(object_id=oid, attributes=dict(cur.attributes))
    if isinstance(op, o.SetKeypoint | o.RemoveKeypoint):
        name = op.name if isinstance(op, o.RemoveKeypoint) else op.keypoint.name
        names = [k.name for k in cur.keypoints]
        if name in names:
            i = names.index(name)
            return o.SetKeypoint(object_id=oid, keypoint=cur.keypoints[i], index=i)
        if isinstance(op, o.RemoveKeypoint):
            raise GeometryError("op.name", f"no keypoint {name!r}")
        return o.RemoveKeypoint(object_id=oid, name=name)
    if isinstance(op, o.SetRpy):
        if cur.type == "rpy":
            assert isinstance(cur.geometry, Rpy)
            return o.SetRpy(object_id=oid, rpy=cur.geometry)
        return o.SetRpy(object_id=oid, rpy=cur.rpy)
    if isinstance(op, o.SetOccluded):
        return o.SetOccluded(object_id=oid, occluded=cur.occluded)
    if isinstance(op, o.SetZ):
        return o.SetZ(object_id=oid, z=cur.z)
    # replace, translate, brush, fill, rasterize, vectorize: restore the whole object.
    return o.Replace(object_id=oid, object=cur)
