"""The ``jobs`` table as a queue: defer, claim, heartbeat, progress, finish, cancel, release.

Who owns the transaction: :func:`defer` and :func:`request_cancel` run inside the caller's (a
route's or a task's), so a job exists exactly when the caller's other writes do. The worker's
calls each run their own short transaction (``sessions`` given).

Claiming (procrastinate's shape): one ``UPDATE jobs ... WHERE id = (SELECT id ... LIMIT 1)``.
On PostgreSQL the inner select takes ``FOR UPDATE SKIP LOCKED``, so any number of workers on any
machine claim distinct jobs without waiting on each other; on SQLite every write transaction
holds the database's one write lock from ``BEGIN IMMEDIATE`` (server/db.py), which makes the
same statement atomic. A running job whose lease ran out (its worker died) is claimable again.

Every change a socket should hear of is announced: on PostgreSQL a ``pg_notify`` on
:data:`EVENT_CHANNEL` in the same transaction (delivered at commit, to every process); on
SQLite the server polls the active jobs instead (server/jobs/feed.py), at once when the change
was committed in its own process (:func:`change_waker`). Deferring rings :data:`WAKE_CHANNEL` so
idle workers claim at once.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, event, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from server.db import is_postgresql, transaction
from server.jobs.status import ACTIVE, Status, on_cancel
from server.models import Job, utcnow

__all__ = [
    "EVENT_CHANNEL",
    "WAKE_CHANNEL",
    "Claimed",
    "LeaseLost",
    "announce",
    "change_waker",
    "claim",
    "defer",
    "drop_waker",
    "finish",
    "heartbeat",
    "local_waker",
    "release",
    "report_progress",
    "request_cancel",
]

WAKE_CHANNEL = "labelhub_jobs"
EVENT_CHANNEL = "labelhub_job_events"
_DEFERRED = "labelhub.jobs.deferred"
_CHANGED = "labelhub.jobs.changed"
_JOBS = cast(Table, Job.__table__)
_local_wakers: set[asyncio.Event] = set()
_change_wakers: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}


class LeaseLost(Exception):
    """This worker no longer holds the job (its lease ran out and another worker claimed it, or
    the job was deleted with its project): stop without writing anything more."""


@dataclass(frozen=True)
class Claimed:
    """A job a worker has just claimed (``attempts`` counts this claim)."""

    id: int
    project_id: int | None
    kind: str
    params: dict[str, Any]
    attempts: int
    cancel_requested: bool
    progress_done: int
    progress_total: int


def local_waker() -> asyncio.Event:
    """An event set whenever this process commits a :func:`defer` (a worker in the same process
    wakes at once; workers in other processes hear ``NOTIFY`` or poll). Drop it with
    :func:`drop_waker`."""
    waker = asyncio.Event()
    _local_wakers.add(waker)
    return waker


def change_waker() -> asyncio.Event:
    """An event set whenever this process commits a change :func:`announce` announced (SQLite's
    job feed reads the jobs then, not at its next poll; changes made by other processes still
    wait for the poll). Drop it with :func:`drop_waker`."""
    waker = asyncio.Event()
    _change_wakers[waker] = asyncio.get_running_loop()
    return waker


def drop_waker(waker: asyncio.Event) -> None:
    _local_wakers.discard(waker)
    _change_wakers.pop(waker, None)


def _ring_changes() -> None:
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for waker, loop in list(_change_wakers.items()):
        if loop is here:
            waker.set()
        elif not loop.is_closed():  # a feed on another thread's loop (a test's live server)
            loop.call_soon_threadsafe(waker.set)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_DEFERRED, False):
        for waker in list(_local_wakers):
            waker.set()
    if session.info.pop(_CHANGED, False):
        _ring_changes()


@event.listens_for(Session, "after_rollback")
def _forget_deferred(session: Session) -> None:
    session.info.pop(_DEFERRED, None)
    session.info.pop(_CHANGED, None)


async def announce(session: AsyncSession, job_id: int, project_id: int | None) -> None:
    """Tell every server process (PostgreSQL) that a job changed, when this transaction commits;
    on SQLite, this process's feeds (:func:`change_waker`)."""
    if is_postgresql(session):
        payload = json.dumps({"job": job_id, "project": project_id})
        await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": EVENT_CHANNEL, "p": payload})
    else:
        session.sync_session.info[_CHANGED] = True


async def defer(session: AsyncSession, *, kind: str, project_id: int | None,
                params: dict[str, Any], created_by: int | None = None,
                dedupe: bool = False) -> int:
    """Queue a job inside the caller's transaction and return its id.

    Args:
        kind: a registered task kind (server/jobs/registry.py).
        project_id: the project it belongs to (its sockets hear of it), or ``None``.
        params: JSON object handed to the task as ``JobContext.params``.
        created_by: the user who asked for it (may cancel it without ``manage`` privileges).
        dedupe: return the id of a queued or running job of the same project, kind and params
            instead of queueing another.
    """
    if dedupe:
        if is_postgresql(session):
            # Two concurrent defers of the same job must not both miss each other (SQLite's
            # write lock, taken at BEGIN, already serializes them). The key is the same in
            # every process, unlike hash().
            key = zlib.crc32(f"labelhub.jobs:{project_id}:{kind}".encode())
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        rows = await session.execute(select(Job.id, Job.params).where(
            Job.kind == kind, Job.status.in_([str(s) for s in ACTIVE]),
            Job.project_id.is_(None) if project_id is None else Job.project_id == project_id,
        ).order_by(Job.id))
        for job_id, existing in rows:
            if existing == params:
                return int(job_id)
    now = utcnow()
    job = Job(project_id=project_id, kind=kind, status=Status.QUEUED, params=params,
              created_by=created_by, created_at=now, updated_at=now, progress_done=0,
              progress_total=0, attempts=0, cancel_requested=False)
    session.add(job)
    await session.flush()
    session.sync_session.info[_DEFERRED] = True
    if is_postgresql(session):
        await session.execute(text("SELECT pg_notify(:c, '')"), {"c": WAKE_CHANNEL})
    await announce(session, job.id, project_id)
    return job.id


async def claim(sessions: async_sessionmaker[AsyncSession], worker: str, kinds: list[str],
                lease_seconds: float) -> Claimed | None:
    """Take the oldest queued job of one of ``kinds``, or a running one whose lease ran out."""
    if not kinds:
        return None
    async with transaction(sessions) as session:
        now = utcnow()
        pick = (select(Job.id).where(
            Job.kind.in_(kinds),
            or_(Job.status == Status.QUEUED,
                and_(Job.status == Status.RUNNING, Job.lease_until < now)))
            .order_by(Job.id).limit(1))
        if is_postgresql(session):
            pick = pick.with_for_update(skip_locked=True)
        row = (await session.execute(
            update(_JOBS).where(_JOBS.c.id == pick.scalar_subquery())
            .values(status=Status.RUNNING, worker=worker[:64], attempts=_JOBS.c.attempts + 1,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    started_at=func.coalesce(_JOBS.c.started_at, now), updated_at=now)
            .returning(_JOBS.c.id, _JOBS.c.project_id, _JOBS.c.kind, _JOBS.c.params,
                       _JOBS.c.attempts, _JOBS.c.cancel_requested, _JOBS.c.progress_done,
                       _JOBS.c.progress_total))).one_or_none()
        if row is None:
            return None
        await announce(session, row.id, row.project_id)
        return Claimed(id=row.id, project_id=row.project_id, kind=row.kind,
                       params=dict(row.params or {}), attempts=row.attempts,
                       cancel_requested=bool(row.cancel_requested),
                       progress_done=row.progress_done, progress_total=row.progress_total)


def _mine(job_id: int, worker: str) -> Any:
    return and_(_JOBS.c.id == job_id, _JOBS.c.worker == worker[:64],
                _JOBS.c.status == Status.RUNNING)


async def heartbeat(sessions: async_sessionmaker[AsyncSession], job_id: int, worker: str,
                    lease_seconds: float) -> bool:
    """Renew the lease; returns whether cancellation was requested. Raises :class:`LeaseLost`."""
    async with transaction(sessions) as session:
        now = utcnow()
        flag = (await session.execute(
            update(_JOBS).where(_mine(job_id, worker))
            .values(lease_until=now + timedelta(seconds=lease_seconds))
            .returning(_JOBS.c.cancel_requested))).scalar_one_or_none()
    if flag is None:
        raise LeaseLost(job_id)
    return bool(flag)


async def report_progress(sessions: async_sessionmaker[AsyncSession], job_id: int,
                          project_id: int | None, worker: str, done: int, total: int) -> bool:
    """Store progress and announce it; returns whether cancellation was requested."""
    async with transaction(sessions) as session:
        flag = (await session.execute(
            update(_JOBS).where(_mine(job_id, worker))
            .values(progress_done=done, progress_total=total, updated_at=utcnow())
            .returning(_JOBS.c.cancel_requested))).scalar_one_or_none()
        if flag is None:
            raise LeaseLost(job_id)
        await announce(session, job_id, project_id)
    return bool(flag)


async def finish(sessions: async_sessionmaker[AsyncSession], job_id: int, project_id: int | None,
                 worker: str, status: Status, *, result: dict[str, Any] | None = None,
                 error: str | None = None, progress: tuple[int, int] | None = None) -> bool:
    """Record the end of a job this worker holds; False when it no longer held it."""
    async with transaction(sessions) as session:
        now = utcnow()
        values: dict[str, Any] = {"status": status, "result": result, "error": error,
                                  "finished_at": now, "updated_at": now, "lease_until": None}
        if progress is not None:
            values["progress_done"], values["progress_total"] = progress
        done = (await session.execute(
            update(_JOBS).where(_mine(job_id, worker)).values(**values)
            .returning(_JOBS.c.id))).scalar_one_or_none()
        if done is not None:
            await announce(session, job_id, project_id)
    return done is not None


async def release(sessions: async_sessionmaker[AsyncSession], job_id: int, project_id: int | None,
                  worker: str) -> None:
    """Hand a running job back to the queue at once (the worker is stopping), progress kept;
    the claim it used is not counted against it."""
    async with transaction(sessions) as session:
        released = (await session.execute(
            update(_JOBS).where(_mine(job_id, worker))
            .values(status=Status.QUEUED, worker=None, lease_until=None, updated_at=utcnow(),
                    attempts=_JOBS.c.attempts - 1)
            .returning(_JOBS.c.id))).scalar_one_or_none()
        if released is not None:
            session.sync_session.info[_DEFERRED] = True
            if is_postgresql(session):
                await session.execute(text("SELECT pg_notify(:c, '')"), {"c": WAKE_CHANNEL})
            await announce(session, job_id, project_id)


async def request_cancel(session: AsyncSession, job: Job) -> bool:
    """Cancel ``job`` (a row read in the caller's transaction, which may lock it): a queued job
    ends now; a running one is flagged, and its worker stops it within a second, keeping what
    it stored. False when it had already ended."""
    decision = on_cancel(Status(job.status))
    if decision is None:
        return False
    now = utcnow()
    job.cancel_requested = decision.flag
    if decision.status is not None:
        job.status = decision.status
        job.finished_at = now
    job.updated_at = now
    await session.flush()
    await announce(session, job.id, job.project_id)
    return True

