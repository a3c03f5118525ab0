"""Appending many op-log rows at once (REST bulk classification, label sync, imports).

Same row shape as the hub's single-op writer (``OpLogEntry``: project_id, seq, image_id,
user_id, kind, op, inverse, client_op_id None, origin). The seqs are taken as one block with
``UPDATE projects SET seq = seq + n ... RETURNING seq`` in the caller's transaction, which also
serializes concurrent writers of the same project and keeps seq gap-free.

Live clients learn about the rows after commit: :func:`notify_after_commit` records the block on
the session; once the transaction commits, every callback registered with :func:`on_ops_committed`
is called with ``(project_id, last_seq, entries)``. ``entries`` are the committed rows themselves
when the writer had them at hand (single ops), so the hub can fan them out without reading them
back; otherwise ``None`` and the hub reads the new rows from the op log. A rollback drops the record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, bindparam, event, func, insert, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.db import is_postgresql, run
from server.models import OpLogEntry, Project, utcnow

_BATCH = 2_000
#: ``session.info`` key holding ``[(project_id, last_seq), ...]`` appended in this transaction.
PENDING_KEY = "labelhub.appended_ops"


@dataclass(frozen=True, slots=True)
class LoggedOp:
    """A committed op-log row as the hub fans it out (the columns of ``OpLogEntry`` it reads)."""

    seq: int
    image_id: int | None
    user_id: int | None
    kind: str
    op: dict[str, Any]
    client_op_id: str | None
    origin: str


@dataclass(frozen=True)
class PendingOp:
    image_id: int | None
    kind: str
    op: dict[str, Any]
    inverse: dict[str, Any] | None


#: PostgreSQL channel of the payload-free doorbell other processes LISTEN on.
DOORBELL_CHANNEL = "labelhub_ops"


_PROJECTS: Any = Project.__table__
# Built once (Core, bind parameters): this runs for every op. The doorbell rides on the same
# statement on PostgreSQL, one round trip instead of two.
_RESERVE = (update(_PROJECTS).where(_PROJECTS.c.id == bindparam("b_id"))
            .values(seq=_PROJECTS.c.seq + bindparam("n", type_=BigInteger)).returning(_PROJECTS.c.seq))
_RESERVE_NOTIFY = _RESERVE.returning(func.pg_notify(DOORBELL_CHANNEL, ""))


async def reserve_seqs(session: AsyncSession, project_id: int, n: int) -> int:
    """Take ``n`` consecutive seqs for the project; returns the first one.

    On PostgreSQL this also rings the doorbell; NOTIFY is delivered only if the transaction
    commits, so other processes never hear of an op that did not happen.
    """
    stmt = _RESERVE_NOTIFY if is_postgresql(session) else _RESERVE
    last = (await run(session, stmt, {"b_id": project_id, "n": n})).first()
    assert last is not None, f"no project {project_id}"
    return int(last[0]) - n + 1


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


def notify_after_commit(session: AsyncSession, project_id: int, last_seq: int,
                        entry: LoggedOp | None = None) -> None:
    """Remember that ops up to ``last_seq`` exist; announced once the commit lands."""
    pending: list[tuple[int, int, list[LoggedOp] | None]] = session.info.setdefault(PENDING_KEY, [])
    if pending and pending[-1][0] == project_id:
        _, _, entries = pending[-1]
        # Consecutive single ops of one project travel together; a bulk block (None) poisons it.
        merged = [*entries, entry] if entries is not None and entry is not None else None
        pending[-1] = (project_id, last_seq, merged)
    else:
        pending.append((project_id, last_seq, [entry] if entry is not None else None))


Listener = Callable[[int, int, "list[LoggedOp] | None"], None]
_listeners: list[Listener] = []


def on_ops_committed(callback: Listener) -> Callable[[], None]:
    """Call ``callback(project_id, last_seq, entries)`` after each commit that appended ops;
    returns an unregister function. Callbacks run synchronously in the committing task: keep
    them cheap (e.g. set an ``asyncio.Event`` or ``call_soon``)."""
    _listeners.append(callback)
    return lambda: _listeners.remove(callback) if callback in _listeners else None


def announce(project_id: int, last_seq: int, entries: list[LoggedOp] | None) -> None:
    """Tell the listeners about committed ops (for a commit made outside a session)."""
    for callback in list(_listeners):
        callback(project_id, last_seq, entries)


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    for project_id, last_seq, entries in session.info.pop(PENDING_KEY, []):
        announce(project_id, last_seq, entries)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
