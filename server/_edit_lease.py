"""The lease an edit runs under and the labeling time it records: the image's lock and open
labeling session, read ``FOR UPDATE`` in the edit's transaction; the fencing-token check; the
session's activity written at most once per :data:`TOUCH_RESOLUTION`.

Called by ``server.edits``' callers (``server.hub.handlers``, ``server.hub._fast_op``,
``server.image_states``) inside the transaction they own; the rules themselves are pure
(``server.hub.locks``, ``server.hub.timing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server._edit_ops import EditError
from server.db import run
from server.hub import timing
from server.hub.locks import Lease, check_token
from server.models import ImageLock, LabelingSession

__all__ = ["LEASE_AND_SPAN", "TOUCH_RESOLUTION", "OpenSpan", "check_lease", "touch", "touched"]

#: An image's lease and its open labeling session, locked (``server.hub._context`` embeds it).
LEASE_AND_SPAN = (
    select(ImageLock.holder_id, ImageLock.connection_id, ImageLock.token, ImageLock.expires_at,
           LabelingSession.id.label("span_id"), LabelingSession.started_at,
           LabelingSession.last_activity_at, LabelingSession.active_seconds)
    .outerjoin(LabelingSession, and_(LabelingSession.image_id == ImageLock.image_id,
                                     LabelingSession.lock_token == ImageLock.token,
                                     LabelingSession.ended_at.is_(None)))
    .where(ImageLock.image_id == bindparam("image_id"))
    .with_for_update(of=ImageLock))
_SPAN_TABLE: Any = LabelingSession.__table__
_TOUCH = update(_SPAN_TABLE).where(_SPAN_TABLE.c.id == bindparam("b_id"))

#: Activity closer than this to the last recorded one is not written (the next write counts the
#: whole gap, so only a gap straddling the idle limit can be misjudged, by at most this much).
#: ``server.edits.labeled_values`` reads it here too ("last labeled" to the same resolution).
TOUCH_RESOLUTION = 1.0


@dataclass(frozen=True)
class OpenSpan:
    """The labeling session of the lease an op runs under (for labeling time)."""

    id: int
    span: timing.Span


def check_lease(row: Any, user_id: int, token: int, now: datetime) -> OpenSpan | None:
    """The op's fencing token must be the image's current, unexpired lease held by this user.

    ``row`` has the columns of ``LEASE_AND_SPAN`` (all ``None`` when the image never had a
    lease), read ``FOR UPDATE`` in the op's transaction so a take-over cannot slip in between
    this check and the commit. Returns the lease's open labeling session.
    """
    lease = Lease.of(row) if row is not None and row.token is not None else None
    problem = check_token(lease, user_id, token, now)
    if problem is not None:
        raise EditError(problem[0], problem[1])
    if row is None or row.span_id is None:
        return None
    return OpenSpan(row.span_id, timing.Span(row.started_at, row.last_activity_at,
                                             float(row.active_seconds or 0.0)))


async def touch(session: AsyncSession, open_span: OpenSpan | None, now: datetime,
                idle_limit: float) -> None:
    """Record activity on the lease's labeling session (see ``server.hub.timing``)."""
    span = touched(open_span, now, idle_limit)
    if open_span is None or span is None:
        return
    await run(session, _TOUCH, {"b_id": open_span.id, "last_activity_at": span.last_activity_at,
                                   "active_seconds": span.active_seconds})


def touched(open_span: OpenSpan | None, now: datetime, idle_limit: float) -> timing.Span | None:
    """The labeling session after activity at ``now``; ``None`` when there is nothing to write."""
    if open_span is None:
        return None
    if (now - open_span.span.last_activity_at).total_seconds() < TOUCH_RESOLUTION:
        return None
    return timing.touch(open_span.span, now, idle_limit)
