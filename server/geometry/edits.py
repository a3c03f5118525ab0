"""Image-level edits: one entry point for every op, including multi-object ones."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import ops as o
from .cost import check_cost, op_cost
from .errors import GeometryError
from .policy import Policy
from .shapes import LabelObject
from .transforms import apply_exact, invert, rasterize_object


@dataclass(frozen=True)
class EditResult:
    """What an op changed and how to undo it.

    ``changes`` maps object id to its new state (None = deleted); ``inverse`` applied with
    ``edit()`` to the new state restores the old one exactly.
    """

    changes: dict[str, LabelObject | None] = field(default_factory=dict)
    inverse: Any = None


class Loaded(Mapping[str, LabelObject]):
    """Some of an image's objects (those an op reads) with the image's true object count, so
    ``len`` still enforces ``max_objects``: loading all 10,000 objects of a busy image for every
    vertex move would cost far more than the edit itself. Pickles (it crosses to the worker
    pool with the op)."""

    def __init__(self, loaded: dict[str, LabelObject], count: int) -> None:
        self._loaded, self._count = loaded, count

    def __getitem__(self, key: str) -> LabelObject:
        return self._loaded[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded)

    def __len__(self) -> int:
        return self._count

    # Plain-dict lookups: Mapping's own go through ``__getitem__`` and a KeyError for every
    # miss, and every create of a batch is one.
    def get(self, key: str, default: Any = None) -> Any:
        return self._loaded.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._loaded


class _Overlay:
    """The image's objects with the edit's changes laid over them, and their running count
    (a batch of n creates checks the count n times: recounting the changes made it quadratic)."""

    def __init__(self, base: Mapping[str, LabelObject]) -> None:
        self.base = base
        self.changes: dict[str, LabelObject | None] = {}
        self._count = len(base)

    def get(self, oid: str) -> LabelObject | None:
        changes = self.changes
        if oid in changes:
            return changes[oid]
        return self.base.get(oid)

    def set(self, oid: str, obj: LabelObject | None) -> None:
        """Lay ``obj`` (None: deleted) over object ``oid``, keeping the count."""
        self._count += (obj is not None) - (self.get(oid) is not None)
        self.changes[oid] = obj

    def count(self) -> int:
        return self._count

    def ids(self) -> list[str]:
        seen = [k for k in self.base if k not in self.changes] + [
            k for k, v in self.changes.items() if v is not None
        ]
        return seen


def _step(view: _Overlay, op: Any, policy: Policy) -> list[Any]:
    """Apply one non-batch op to the overlay; return its inverse ops (in undo order)."""
    if isinstance(op, o.RasterizeAll):
        inverses = []
        for oid in view.ids():
            cur = view.get(oid)
            if cur is None or cur.type not in ("bbox", "polygon"):
                continue
            view.set(oid, rasterize_object(cur, policy))
            inverses.append(o.Replace(object_id=oid, object=cur))
        return inverses[::-1]
    if isinstance(op, o.Create):
        oid = op.object.id
        if view.get(oid) is not None:
            raise GeometryError("op.object.id", f"object {oid!r} already exists")
        if view.count() >= policy.max_objects:
            raise GeometryError("op", f"an image holds at most {policy.max_objects} objects")
        new, _ = apply_exact(None, op, policy)
        view.set(oid, new)
        return [o.Delete(object_id=oid)]
    cur = view.get(op.object_id)
    if cur is None:
        raise GeometryError("op.object_id", f"no object {op.object_id!r}")
    new, exact = apply_exact(cur, op, policy)
    view.set(cur.id, new)
    return [invert(cur, op) if exact else o.Replace(object_id=cur.id, object=cur)]


def edit(objects: Mapping[str, LabelObject], op: Any, policy: Policy) -> EditResult:
    """Apply ``op`` (a model or its JSON) to an image's ``objects`` (id -> object).

    Raises :class:`~.cost.TooCostly` before any work when the op is over the image's cost limit.
    """
    op = o.parse_op(op)
    check_cost(op_cost(op, objects, policy.image_width, policy.image_height),
               policy.image_width, policy.image_height)
    view = _Overlay(objects)
    if isinstance(op, o.Batch):
        if len(op.ops) > policy.max_batch_ops:
            raise GeometryError("op.ops", f"more than {policy.max_batch_ops} ops")
        steps: list[list[Any]] = []
        for i, sub in enumerate(op.ops):
            try:
                steps.append(_step(view, sub, policy))
            except GeometryError as exc:
                rest = exc.field.removeprefix("op").lstrip(".")
                raise GeometryError(
                    f"op.ops.{i}" + (f".{rest}" if rest else ""), exc.message
                ) from None
        # The last step's inverses undo first (collected, then joined once: prepending to a
        # list per step was quadratic too).
        undo = [inv for step in reversed(steps) for inv in step]
        return EditResult(view.changes, o.Batch(ops=undo))
    undo = _step(view, op, policy)
    inverse = (
        undo[0] if len(undo) == 1 and not isinstance(op, o.RasterizeAll) else o.Batch(ops=undo)
    )
    return EditResult(view.changes, inverse)
