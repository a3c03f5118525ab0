"""Appending many op-log rows at once (REST bulk classification, label sync, imports).

Same row shape as the hub's single-op writer (``OpLogEntry``: project_id, seq, image_id,
user_id, kind, op, inverse, client_op_id None, origin). The seqs are taken as one block with
``UPDATE projects SET seq = seq + n ... RETURNING seq`` in the caller's transaction, which also
serializes concurrent writers of the same project and keeps seq gap-free.

Live clients learn about the rows after commit: :func:`notify_after_commit` registers the block
on the session and the hub's after-commit hook (if the hub is loaded) wakes its subscribers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import OpLogEntry, Project, utcnow

_BATCH = 2_000
#: ``session.info`` key holding ``[(project_id, last_seq), ...]`` appended in this transaction.
PENDING_KEY = "labelhub.appended_ops"


@dataclass(frozen=True)
class PendingOp:
    image_id: int | None
    kind: str
    op: dict[str, Any]
    inverse: dict[str, Any] | None


async def reserve_seqs(session: AsyncSession, project_id: int, n: int) -> int:
    """Take ``n`` consecutive seqs for the project; returns the first one."""
    last = (await session.execute(
        update(Project).where(Project.id == project_id).values(seq=Project.seq + n)
        .returning(Project.seq)
    )).scalar_one()
    return int(last) - n + 1


async def append_ops(
    session: AsyncSession, project_id: int, user_id: int | None, ops: Sequence[PendingOp],
    origin: str,
) -> int | None:
    """Append ``ops`` in order with consecutive seqs; returns the last seq (None if no ops)."""
    if not ops:
        return None
    first = await reserve_seqs(session, project_id, len(ops))
    now = utcnow()
    conn = await session.connection()
    table: Any = OpLogEntry.__table__
    for start in range(0, len(ops), _BATCH):
        rows = [
            {"project_id": project_id, "seq": first + start + i, "image_id": op.image_id,
             "user_id": user_id, "kind": op.kind, "op": op.op, "inverse": op.inverse,
             "client_op_id": None, "reverts_seq": None, "origin": origin, "created_at": now}
            for i, op in enumerate(ops[start : start + _BATCH])
        ]
        await conn.execute(insert(table), rows)
    last = first + len(ops) - 1
    notify_after_commit(session, project_id, last)
    return last


def notify_after_commit(session: AsyncSession, project_id: int, last_seq: int) -> None:
    """Remember that ops up to ``last_seq`` exist; delivered by the hub once the commit lands."""
    session.info.setdefault(PENDING_KEY, []).append((project_id, last_seq))
