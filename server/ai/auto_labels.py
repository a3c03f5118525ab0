"""Adding labels a machine proposed (accepted suggestions, added predictions) — one path for both.

Labels go in as ``add_label`` ops with source ``auto`` through the op log (origin ``rest``, each
with its inverse: live to everyone watching, undoable), and the images are marked
``auto_labeled``. Only new labels are added: a label the image already has is left alone (never
moving the default of a label a person set), and nothing is ever removed. Images someone else
holds the lock of are skipped and reported. Runs in the caller's transaction, which must have
locked the project row first (as every writer of label state does, server/labels.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from server import _label_store as label_store
from server._object_store import objects_from
from server._oplog import PendingOp, append_ops
from server._sources import SET_SOURCE, set_sources
from server.classification import (
    AddLabel,
    ClassificationError,
    ImageLabelState,
    SetLabels,
    apply_label_op,
    normalize_label,
)
from server.errors import invalid
from server.image_query import DbId
from server.image_sets import locked_by_others, project_images
from server.models import Image

__all__ = ["AddItem", "Added", "add_auto_labels", "confirm_auto_labels"]


class AddItem(BaseModel):
    """One image and the labels to add to it (names are normalised, duplicates dropped)."""

    model_config = ConfigDict(extra="forbid")
    image: DbId
    labels: list[str] = Field(min_length=1, max_length=20)

    @field_validator("labels")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        try:
            return list(dict.fromkeys(normalize_label(v) for v in value))
        except ClassificationError as exc:
            raise ValueError(exc.message) from None


@dataclass
class Added:
    """What :func:`add_auto_labels` did: per image the labels added, or why it was skipped."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    seq: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "skipped": self.skipped, "seq": self.seq}


async def add_auto_labels(session: AsyncSession, project_id: int, user_id: int,
                          items: Sequence[AddItem], skip: dict[int, str] | None = None) -> Added:
    """Add each item's labels (which must be labels of the project: 422 naming the others) with
    source ``auto``; ``skip`` maps images to leave alone to the reason reported."""
    wanted = await project_images(session, project_id, [item.image for item in items])
    names = {n for item in items for n in item.labels}
    known = await label_store.label_ids(session, project_id, names)
    unknown = sorted(names - set(known))
    if unknown:
        raise invalid(f"not labels of this project: {', '.join(unknown[:20])}",
                      {"labels": unknown[:100]})
    skip = dict(skip or {})
    for image_id in await locked_by_others(session, wanted, user_id):
        skip.setdefault(image_id, "locked")
    labels_of: dict[int, list[str]] = {}
    for item in items:
        labels_of.setdefault(item.image, []).extend(
            n for n in item.labels if n not in labels_of.get(item.image, []))
    states = await label_store.read_labels(session, [i for i in wanted if i not in skip])
    changed: dict[int, Any] = {}
    pending: list[PendingOp] = []
    out = Added()
    for image_id in wanted:
        if image_id in skip:
            out.skipped.append({"image": image_id, "reason": skip[image_id]})
            continue
        state = states[image_id]
        added: list[str] = []
        for name in labels_of[image_id]:
            if any(s.label == name for s in state):
                continue  # never moves the default of a label a person set
            op = AddLabel(name, "auto")
            state, inverse = apply_label_op(state, op, user_id)
            assert inverse is not None
            pending.append(PendingOp(image_id, op.kind, op.to_dict(), inverse.to_dict()))
            added.append(name)
        if added:
            changed[image_id] = state
            out.applied.append({"image": image_id, "labels": added})
        else:
            out.skipped.append({"image": image_id, "reason": "already_labeled"})
    await label_store.write_labels(session, project_id, changed)
    out.seq = await append_ops(session, project_id, user_id, pending, "rest")
    ids = sorted(changed)
    for start in range(0, len(ids), 500):
        await session.execute(update(Image).where(Image.id.in_(ids[start : start + 500]))
                              .values(auto_labeled=True))
    return out


async def confirm_auto_labels(session: AsyncSession, project_id: int, user_id: int,
                              images: Sequence[int]) -> Added:
    """A person reviewed these images: their labels and objects with source ``auto`` become
    ``manual`` (so they train models from now on; labels credited to ``user_id``), as one
    ``set_labels`` and one ``set_source`` op per image, each with its inverse (live, undoable),
    and the images leave the auto-labeled filter. Order and default label are kept. Images
    locked by someone else are skipped (``locked``), images with neither auto labels nor auto
    objects too (``nothing_to_confirm``). Same transaction rules as :func:`add_auto_labels`."""
    wanted = await project_images(session, project_id, list(images))
    skip = dict.fromkeys(await locked_by_others(session, wanted, user_id), "locked")
    open_ids = [i for i in wanted if i not in skip]
    states = await label_store.read_labels(session, open_ids)
    auto_objects = await objects_from(session, open_ids, "auto")
    changed: dict[int, Any] = {}
    pending: list[PendingOp] = []
    confirmed: list[int] = []
    out = Added()
    for image_id in wanted:
        state = states.get(image_id, [])
        autos = [s.label for s in state if s.source == "auto"]
        objects = auto_objects.get(image_id, {})
        if image_id not in skip and not autos and not objects:
            skip[image_id] = "nothing_to_confirm"
        if image_id in skip:
            out.skipped.append({"image": image_id, "reason": skip[image_id]})
            continue
        if autos:
            op = SetLabels(tuple(ImageLabelState(s.label, s.is_default, "manual", user_id)
                                 if s.source == "auto" else s for s in state))
            new_state, inverse = apply_label_op(state, op, user_id)
            assert inverse is not None
            pending.append(PendingOp(image_id, op.kind, op.to_dict(), inverse.to_dict()))
            changed[image_id] = new_state
        if objects:
            obj_op, obj_inverse, _, writes = set_sources(
                objects, dict.fromkeys(objects, "manual"), project_id=project_id,
                image_id=image_id, user_id=user_id)
            await writes.run(session)
            pending.append(PendingOp(image_id, SET_SOURCE, obj_op, obj_inverse))
        confirmed.append(image_id)
        out.applied.append({"image": image_id, "labels": autos, "objects": sorted(objects)})
    await label_store.write_labels(session, project_id, changed)
    out.seq = await append_ops(session, project_id, user_id, pending, "rest")
    ids = sorted(confirmed)
    for start in range(0, len(ids), 500):
        await session.execute(update(Image).where(Image.id.in_(ids[start : start + 500]))
                              .values(auto_labeled=False))
    return out
