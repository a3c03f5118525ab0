"""Adding boxes a detector proposed — the object counterpart of server/ai/auto_labels.py.

Each box goes in as a ``create`` op through the edit path's own step (``server.edits.
apply_object_op``: validation against the image and the project's geometry policy, the inverse
op), written with source ``auto`` and logged with origin ``rest`` like auto labels (each with
its inverse: live to everyone watching, undoable by the user who added it), and the images are
marked ``auto_labeled`` (with label synchronization on, their labels follow, as for any
edit). Only new objects are added: a box overlapping an existing object of its
label (or one added just before) by IoU >= :data:`SAME_IOU` is not added twice; nothing is
removed or changed. Images someone else holds the lock of are skipped by the caller. Runs in the
caller's transaction, which must have locked the project row first.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import _label_store as label_store
from server._object_store import load_objects
from server._oplog import PendingOp, append_ops
from server.classification import apply_label_op, sync_label_ops
from server.edits import EditError, ImageRef, apply_object_op
from server.errors import invalid
from server.geometry import GeometryError, parse_op
from server.models import Image, utcnow
from server.preferences import effective_settings

__all__ = ["SAME_IOU", "AddedObjects", "add_auto_objects", "bounds"]

SAME_IOU = 0.5  # a proposed box this close to an object of its label is that object

Rect = tuple[float, float, float, float]  # x, y, w, h


def bounds(kind: str, geometry: Any) -> Rect | None:
    """The bounding box of a stored object's geometry (bbox, polygon, polyline), else None."""
    if not isinstance(geometry, dict):
        return None
    if kind == "bbox":
        return (float(geometry["x"]), float(geometry["y"]), float(geometry["w"]),
                float(geometry["h"]))
    points: list[Sequence[float]] = []
    if kind == "polygon":
        points = [p for part in geometry.get("parts", []) for p in part.get("exterior", [])]
    elif kind == "polyline":
        points = list(geometry.get("points", []))
    if not points:
        return None
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


async def _sync(session: AsyncSession, project_id: int, user_id: int,
                added: Mapping[int, Sequence[Mapping[str, Any]]]) -> int | None:
    """Label synchronization, as the edit path does it: each new object label also becomes a
    label of the image (source ``sync``, logged with origin ``sync``)."""
    images = [i for i, objs in added.items() if objs]
    states = await label_store.read_labels(session, images)
    changed: dict[int, Any] = {}
    ops: list[PendingOp] = []
    for image_id in images:
        state = states[image_id]
        for name in sorted({str(o["label"]) for o in added[image_id]}):
            for op in sync_label_ops(name, state):
                state, inverse = apply_label_op(state, op, user_id)
                if inverse is not None:
                    ops.append(PendingOp(image_id, op.kind, op.to_dict(), inverse.to_dict()))
                    changed[image_id] = state
    await label_store.write_labels(session, project_id, changed)
    return await append_ops(session, project_id, user_id, ops, "sync")


def _iou(a: Rect, b: Rect) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return ix * iy / union if union > 0 else 0.0


@dataclass
class AddedObjects:
    """Per image the objects added (``{"id", "label"}``) and how many were already there."""

    added: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    duplicates: dict[int, int] = field(default_factory=dict)
    seq: int | None = None


async def add_auto_objects(session: AsyncSession, project_id: int, user_id: int,
                           boxes: Mapping[int, Sequence[tuple[str, Mapping[str, float]]]]
                           ) -> AddedObjects:
    """Add each image's ``(label, {"x", "y", "w", "h"})`` boxes as ``auto`` bbox objects. A box
    the image cannot take (outside it, per the project's policy) is a 422 naming it; nothing is
    written then (the caller's transaction rolls back)."""
    settings = await effective_settings(session, project_id, user_id)
    images = {int(r.id): r for r in (await session.execute(select(
        Image.id, Image.width, Image.height, Image.object_count).where(
        Image.project_id == project_id, Image.id.in_(list(boxes))))).all()}
    out = AddedObjects()
    pending: list[PendingOp] = []
    counts: dict[int, int] = {}
    for image_id, wanted in boxes.items():
        row = images[image_id]
        image = ImageRef(image_id, project_id, int(row.width), int(row.height),
                         int(row.object_count))
        taken = [(r.label, b) for r in (await load_objects(session, image_id, None)).values()
                 if (b := bounds(r.type, r.geometry)) is not None]
        added: list[dict[str, Any]] = []
        duplicates = 0
        for k, (label, g) in enumerate(wanted):
            rect = (float(g["x"]), float(g["y"]), float(g["w"]), float(g["h"]))
            if any(name == label and _iou(rect, b) >= SAME_IOU for name, b in taken):
                duplicates += 1
                continue
            oid = uuid.uuid4().hex
            try:
                op = parse_op({"kind": "create", "object": {
                    "id": oid, "type": "bbox", "label": label, "geometry": dict(g)}})
                op_dict, inverse, _, writes = await apply_object_op(
                    op, {}, project_id=project_id, image=image, user_id=user_id,
                    settings=settings, origin="rest", source="auto")
            except (GeometryError, EditError) as exc:
                raise invalid(f"image {image_id}, box {k}: {exc}",
                              {"image": image_id, "box": k}) from None
            await writes.run(session)
            pending.append(PendingOp(image_id, "create", op_dict, inverse))
            taken.append((label, rect))
            added.append({"id": oid, "label": label})
        out.added[image_id] = added
        out.duplicates[image_id] = duplicates
        if added:
            counts[image_id] = image.object_count
    out.seq = await append_ops(session, project_id, user_id, pending, "rest")
    if settings.synchronize_labels:
        out.seq = await _sync(session, project_id, user_id, out.added) or out.seq
    now = utcnow()
    for image_id, count in counts.items():
        await session.execute(update(Image).where(Image.id == image_id).values(
            object_count=count, auto_labeled=True, labeled_at=now, labeled_by=user_id))
    return out
