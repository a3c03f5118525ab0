"""Undo and redo per user per image, derived from the op log so they survive reloads.

An undo applies the reverted row's stored ``inverse``; a redo applies the reverted row's ``op``.
Both go through the normal commit path as new log rows (origin ``undo`` / ``redo``, with
``reverts_seq``), so everyone sees them live and nothing is ever rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import OpLogEntry

# A user's own changes of an image: edits in the tool, and those made over REST (labels applied
# from the dashboard, suggestions and predictions accepted), which the tool's undo reverts too.
DOING_ORIGINS = ("edit", "rest")
UNDOABLE_ORIGINS = (*DOING_ORIGINS, "undo", "redo")


@dataclass(frozen=True)
class LogStep:
    seq: int
    origin: str
    reverts_seq: int | None
    has_inverse: bool


def stacks(steps: Iterable[LogStep], depth: int) -> tuple[list[int], list[int]]:
    """Replay one user's steps on one image (oldest first) into (undo, redo) stacks of seqs."""
    undo: list[int] = []
    redo: list[int] = []
    for step in steps:
        if step.origin in DOING_ORIGINS:
            if step.has_inverse:
                undo.append(step.seq)
                redo.clear()
        elif step.origin == "undo":
            if undo and undo[-1] == step.reverts_seq:
                undo.pop()
                redo.append(step.reverts_seq)
        elif step.origin == "redo" and redo and redo[-1] == step.reverts_seq:
            redo.pop()
            undo.append(step.seq)
        del undo[:-depth]
    return undo, redo


async def target(session: AsyncSession, *, image_id: int, user_id: int, depth: int,
                 which: Literal["undo", "redo"]) -> OpLogEntry | None:
    """The log row an undo (or redo) would revert (or restore) now, if any."""
    window = max(4 * depth, 200)
    rows = (await session.execute(
        select(OpLogEntry.seq, OpLogEntry.origin, OpLogEntry.reverts_seq,
               OpLogEntry.inverse.is_not(None))
        .where(OpLogEntry.image_id == image_id, OpLogEntry.user_id == user_id,
               OpLogEntry.origin.in_(UNDOABLE_ORIGINS))
        .order_by(OpLogEntry.seq.desc()).limit(window))).all()
    steps = [LogStep(int(seq), origin, reverts, bool(has_inv))
             for seq, origin, reverts, has_inv in reversed(rows)]
    undo, redo = stacks(steps, depth)
    chosen = undo if which == "undo" else redo
    if not chosen:
        return None
    return (await session.execute(select(OpLogEntry).where(
        OpLogEntry.image_id == image_id, OpLogEntry.seq == chosen[-1]))).scalar_one_or_none()


def follow_renames(op: Any, renames: Sequence[tuple[str, str]]) -> Any:
    """``op`` with label names carried through the renames made after it was logged, so undoing
    an edit made before a rename acts on the label under its new name. Pure."""
    if not renames or not isinstance(op, dict):
        return op

    def name(value: Any) -> Any:
        for old, new in renames:
            if value == old:
                value = new
        return value

    def obj(o: Any) -> Any:
        return {**o, "label": name(o.get("label"))} if isinstance(o, dict) and "label" in o else o

    out = dict(op)
    if "label" in out:
        out["label"] = name(out["label"])
    if isinstance(out.get("labels"), list):
        out["labels"] = [obj(item) for item in out["labels"]]
    if "object" in out:
        out["object"] = obj(out["object"])
    if isinstance(out.get("objects"), list):
        out["objects"] = [obj(item) for item in out["objects"]]
    if isinstance(out.get("ops"), list):
        out["ops"] = [follow_renames(sub, renames) for sub in out["ops"]]
    return out


async def renames_after(session: AsyncSession, project_id: int, seq: int) -> list[tuple[str, str]]:
    """The label renames logged in the project after ``seq``, oldest first."""
    rows = (await session.execute(
        select(OpLogEntry.op).where(OpLogEntry.project_id == project_id,
                                    OpLogEntry.kind == "rename_label", OpLogEntry.seq > seq)
        .order_by(OpLogEntry.seq))).scalars()
    return [(str(op.get("from")), str(op.get("to"))) for op in rows if isinstance(op, dict)]
