"""Applying parsed import records: match images by file name, validate, replace or merge,
write in bulk and log every change in the op log (one transaction; all or nothing).

Per image, at most two op-log rows: a ``set_labels`` classification op and a ``batch`` of
object ops (``create`` / ``replace`` / ``delete``), each with its exact inverse, origin
``import``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server import _label_store as store
from server._object_store import row_to_dict
from server._oplog import PendingOp
from server.classification import (
    AddLabel,
    ClassificationError,
    ImageLabelState,
    SetDefaultLabel,
    SetLabels,
    apply_label_op,
    normalize_label,
    sync_label_ops,
)
from server.formats._import_writes import ObjectWrite, write_import, write_log
from server.geometry.errors import GeometryError
from server.geometry.plain import fits_policy, plain_objects
from server.geometry.policy import Policy
from server.geometry.validation import parse_object, validate
from server.models import Image, LabelObjectRow, utcnow
from server.preferences import LabelingSettings

REPORT_APPLIED_LIMIT = 1_000
REPORT_REFUSED_LIMIT = 10_000


class ImportFileError(Exception):
    """The file as a whole cannot be read (bad JSON, missing CSV columns...)."""


@dataclass
class Incoming:
    """One row / entry of an import file, as the format parser read it."""

    row: int
    image: str
    labels: Any = None  # list of names or of {"label", "is_default"?, "source"?}
    objects: Any = None  # list of object dicts
    has_labels: bool = False
    has_objects: bool = False
    default: str | None = None  # an explicit default label (CSV)
    error: tuple[str, str] | None = None  # (field, message) found while parsing
    #: Another tool's predictions of the image (Label Studio; ``server/ai/imported.py``).
    predictions: list[dict[str, Any]] | None = None


@dataclass
class _Plan:
    image_id: int
    width: int
    height: int
    rows: list[int] = field(default_factory=list)
    labels: list[ImageLabelState] | None = None
    default: str | None = None
    objects: dict[str, dict[str, Any]] | None = None


@dataclass
class Report:
    dry_run: bool
    mode: str
    rows: int = 0
    images: int = 0
    refused: int = 0
    labels_changed: int = 0
    objects_changed: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "mode": self.mode, "rows": self.rows,
                "applied": self.rows - self.refused if not self.refused else 0,
                "refused": self.refused, "images": self.images,
                "images_with_label_changes": self.labels_changed,
                "images_with_object_changes": self.objects_changed, "report": self.entries}


async def images_by_name(session: AsyncSession, project_id: int, names: set[str]) -> dict[str, list[tuple[int, int, int]]]:
    out: dict[str, list[tuple[int, int, int]]] = {}
    stmt = select(Image.name, Image.id, Image.width, Image.height).where(Image.project_id == project_id)
    batches = [stmt] if len(names) > 5_000 else [
        stmt.where(Image.name.in_(chunk)) for chunk in _chunks(sorted(names), 500)]
    for s in batches:
        for name, id_, w, h in await session.execute(s):
            if name in names:
                out.setdefault(name, []).append((id_, w, h))
    return out


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _labels(raw: Any, where: str) -> list[ImageLabelState]:
    if not isinstance(raw, list):
        raise ClassificationError(where, "must be a list")
    out: list[ImageLabelState] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            out.append(ImageLabelState(normalize_label(item, f"{where}.{i}"), False, "manual"))
            continue
        if not isinstance(item, dict):
            raise ClassificationError(f"{where}.{i}", "must be a label name or an object")
        name = normalize_label(item.get("label", item.get("name")), f"{where}.{i}.label")
        is_default = item.get("is_default", False)
        source = item.get("source", "manual")
        if not isinstance(is_default, bool):
            raise ClassificationError(f"{where}.{i}.is_default", "must be a boolean")
        if source not in ("manual", "auto", "sync"):
            raise ClassificationError(f"{where}.{i}.source", "must be manual, auto or sync")
        out.append(ImageLabelState(name, is_default, source))
    return out


def _plan_row(plan: _Plan, rec: Incoming, policy: Policy) -> None:
    """Fold one record into the image's plan; raises GeometryError / ClassificationError."""
    if rec.has_labels:
        incoming = _labels(rec.labels, "labels") if rec.labels is not None else []
        merged = list(plan.labels or [])
        for s in incoming:
            if s.is_default:
                plan.default = s.label
            if all(m.label != s.label for m in merged):
                merged.append(ImageLabelState(s.label, False, s.source))
        plan.labels = merged
    if rec.default:
        name = normalize_label(rec.default, "default_label")
        if plan.labels is None or all(s.label != name for s in plan.labels):
            raise ClassificationError("default_label", f"{name!r} is not among the image's labels")
        plan.default = name
    if rec.has_objects:
        if not isinstance(rec.objects, list):
            raise GeometryError("objects", "must be a list")
        objects = plan.objects if plan.objects is not None else {}
        # Plain boxes and points in one compiled check (server/geometry/plain.py); anything it
        # is not sure of takes the general path, whose errors name the failing object.
        fast = plain_objects(rec.objects)
        if fast is None or not fits_policy(fast, policy):
            fast = [validate(parse_object(data, f"objects.{i}"), policy, f"objects.{i}").model_dump(mode="json")
                    for i, data in enumerate(rec.objects)]
        for i, dumped in enumerate(fast):
            oid = dumped["id"]
            if oid in objects:
                raise GeometryError(f"objects.{i}.id", f"duplicate object id {oid!r} in this image")
            objects[oid] = dumped
        plan.objects = objects


def _final_labels(plan: _Plan, current: list[ImageLabelState], replace: bool,
                  user_id: int | None, sync: bool) -> list[ImageLabelState]:
    state = list(current)
    if plan.labels is not None:
        if replace:
            default = plan.default or (plan.labels[0].label if plan.labels else None)
            state = [ImageLabelState(s.label, s.label == default, s.source, user_id) for s in plan.labels]
        else:
            for s in plan.labels:
                if all(c.label != s.label for c in state):
                    state, _ = apply_label_op(state, AddLabel(s.label, s.source), user_id)
            if plan.default:
                state, _ = apply_label_op(state, SetDefaultLabel(plan.default), user_id)
    if sync and plan.objects:
        for obj in plan.objects.values():
            for op in sync_label_ops(obj.get("label", ""), state):
                state, _ = apply_label_op(state, op, user_id)
    return state


async def run_import(
    session: AsyncSession, project_id: int, user_id: int | None, records: list[Incoming],
    settings: LabelingSettings, *, replace: bool, dry_run: bool,
) -> Report:
    report = Report(dry_run=dry_run, mode="replace" if replace else "merge", rows=len(records))
    for rec in records:
        if rec.error is None and (not isinstance(rec.image, str) or "\x00" in rec.image):
            rec.error = ("image", "must be a file name")  # PostgreSQL text cannot hold NUL
    found = await images_by_name(session, project_id, {r.image for r in records if r.image and r.error is None})
    plans: dict[int, _Plan] = {}
    base = settings.model_dump()
    policies: dict[tuple[int, int], Policy] = {}
    listed = 0

    def refuse(rec: Incoming, fld: str, message: str) -> None:
        report.refused += 1
        if len(report.entries) < REPORT_APPLIED_LIMIT + REPORT_REFUSED_LIMIT:
            report.entries.append({"row": rec.row, "image": rec.image, "status": "refused",
                                   "field": fld, "reason": message})

    for rec in records:
        if rec.error is not None:
            refuse(rec, *rec.error)
            continue
        matches = found.get(rec.image, [])
        if len(matches) != 1:
            refuse(rec, "image", f"no image named {rec.image!r} in this project" if not matches
                   else f"{len(matches)} images are named {rec.image!r}")
            continue
        image_id, w, h = matches[0]
        plan = plans.setdefault(image_id, _Plan(image_id, w, h))
        try:
            policy = policies.get((w, h))
            if policy is None:
                policy = policies[w, h] = Policy.from_settings(base, w, h)
            _plan_row(plan, rec, policy)
        except (GeometryError, ClassificationError) as exc:
            refuse(rec, exc.field, exc.message)
            continue
        plan.rows.append(rec.row)
        if listed < REPORT_APPLIED_LIMIT:
            listed += 1
            report.entries.append({"row": rec.row, "image": rec.image, "status": "applied"})
    report.images = len(plans)
    if report.refused:
        report.entries = [e for e in report.entries if e["status"] == "refused"] + \
            [e | {"status": "not_applied"} for e in report.entries if e["status"] == "applied"]
        return report
    await _apply(session, project_id, user_id, plans, settings, replace, dry_run, report)
    return report


async def _apply(session: AsyncSession, project_id: int, user_id: int | None, plans: dict[int, _Plan],
                 settings: LabelingSettings, replace: bool, dry_run: bool, report: Report) -> None:
    ids = sorted(plans)
    label_ids = [i for i in ids if plans[i].labels is not None or (settings.synchronize_labels and plans[i].objects)]
    current = await store.read_labels(session, label_ids)
    new_labels: dict[int, list[ImageLabelState]] = {}
    pending: list[PendingOp] = []
    for image_id in label_ids:
        before = current[image_id]
        after = _final_labels(plans[image_id], before, replace, user_id, settings.synchronize_labels)
        if after != before:
            new_labels[image_id] = after
            pending.append(PendingOp(image_id, "set_labels", SetLabels(tuple(after)).to_dict(),
                                     SetLabels(tuple(before)).to_dict()))
    object_ids = [i for i in ids if plans[i].objects is not None]
    old_objects = await _read_objects(session, object_ids)
    writes: list[ObjectWrite] = []
    for image_id in object_ids:
        old = old_objects[image_id]
        new = plans[image_id].objects or {}
        final = dict(new) if replace else {**{k: v["object"] for k, v in old.items()}, **new}
        ops, inverse, touched = _object_ops(old, final)
        if ops:
            writes.append(ObjectWrite(image_id, old, final, touched))
            pending.append(PendingOp(image_id, "batch", {"kind": "batch", "ops": ops},
                                     {"kind": "batch", "ops": inverse}))
    report.labels_changed, report.objects_changed = len(new_labels), len(writes)
    if dry_run:
        return
    await store.write_labels(session, project_id, new_labels)
    counts: dict[int, int | None] = dict.fromkeys(sorted(new_labels))
    counts.update((w.image_id, len(w.final)) for w in writes)
    now = utcnow()
    await write_import(session, project_id, user_id, writes, counts, now)
    await write_log(session, project_id, user_id, pending, "import", now)


async def _read_objects(session: AsyncSession, image_ids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {i: {} for i in image_ids}
    for chunk in _chunks(image_ids, 500):
        rows = await session.execute(select(LabelObjectRow).where(LabelObjectRow.image_id.in_(chunk)))
        for (row,) in rows:
            out[row.image_id][row.id] = {"object": row_to_dict(row), "version": row.version,
                                         "created_by": row.created_by, "created_at": row.created_at}
    return out


def _object_ops(old: dict[str, dict[str, Any]], final: dict[str, dict[str, Any]]
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    ops: list[dict[str, Any]] = []
    inverse: list[dict[str, Any]] = []
    touched: list[str] = []
    for oid, entry in old.items():
        if oid not in final:
            ops.append({"kind": "delete", "object_id": oid})
            inverse.append({"kind": "create", "object": entry["object"]})
            touched.append(oid)
    for oid, obj in final.items():
        if oid not in old:
            ops.append({"kind": "create", "object": obj})
            inverse.append({"kind": "delete", "object_id": oid})
            touched.append(oid)
        elif old[oid]["object"] != obj:
            ops.append({"kind": "replace", "object_id": oid, "object": obj})
            inverse.append({"kind": "replace", "object_id": oid, "object": old[oid]["object"]})
            touched.append(oid)
    return ops, inverse[::-1], touched
