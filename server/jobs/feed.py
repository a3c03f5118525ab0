"""Hearing of job changes made in any process: the ``job`` socket events and :func:`JobFeed.wait`.

Workers are other processes, so a change reaches a server process through the database:

* PostgreSQL: every change sends ``pg_notify('labelhub_job_events', '{"job": id, "project": p}')``
  in its transaction (server/jobs/queue.py); the feed LISTENs, reads the job's row and passes
  its state on. After a reconnect (notifications may have been lost) it re-reads every active job.
* SQLite (one machine, no NOTIFY): the feed polls every 0.5 s, and only while someone listens
  (a project room is open, or a :meth:`~JobFeed.wait` is pending); a change committed in this
  process (a job queued or cancelled here, a worker running in it) polls at once
  (``server.jobs.queue.change_waker``). Each poll reads the jobs that are queued or running, or
  were at the last poll (so their end is heard), or are waited for: an index range on
  ``(status, id)`` that is empty when no job is active. A row goes on only when its
  ``updated_at`` differs from the last poll's. A job queued and ended between two polls is not
  announced (nobody saw it start); its end is in ``GET .../jobs``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server._listen import Listener, asyncpg_dsn
from server.db import is_sqlite
from server.hub.leases import iso
from server.jobs import queue
from server.jobs.status import ACTIVE
from server.models import Job
from server.protocol import JobProgress, JobState

__all__ = ["JobFeed", "state_of"]

log = logging.getLogger("labelhub.jobs")
SQLITE_POLL = 0.5
STOP_WAIT = 5.0  # seconds a stopping feed waits for the read under way


def state_of(job: Job) -> JobState:
    """The wire form of a job row (REST and the ``job`` event)."""
    return JobState(
        id=job.id, project=job.project_id, kind=job.kind, status=job.status,  # type: ignore[arg-type]
        progress=JobProgress(done=job.progress_done, total=job.progress_total),
        params=job.params or {}, result=job.result, error=job.error, attempts=job.attempts,
        cancel_requested=job.cancel_requested, created_by=job.created_by,
        created_at=iso(job.created_at) or "", started_at=iso(job.started_at),
        finished_at=iso(job.finished_at), updated_at=iso(job.updated_at) or "")


class JobFeed:
    """Calls ``on_change`` with the new state of every job that changes, in any process.

    ``wanted()`` says whether anyone listens now (SQLite polls only then).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], url: str,
                 on_change: Callable[[JobState], None] | None = None,
                 wanted: Callable[[], bool] = lambda: True, poll: float = SQLITE_POLL) -> None:
        self.sessions, self.url, self.poll = sessions, url, poll
        self.on_change, self.wanted = on_change, wanted
        self._waiters: list[tuple[int, Callable[[JobState], bool], asyncio.Future[JobState]]] = []
        self._task: asyncio.Task[None] | None = None
        self._listener: Listener | None = None
        self._pending: set[int] = set()
        self._flush: asyncio.Task[None] | None = None
        self._seen: dict[int, datetime] = {}
        self._changed: asyncio.Event | None = None
        self._stopping = False

    async def start(self) -> None:
        if is_sqlite(self.url):
            self._changed = queue.change_waker()
            self._task = asyncio.create_task(self._poll(self._changed), name="jobs-feed")
            return
        self._listener = Listener(asyncpg_dsn(self.url), {queue.EVENT_CHANNEL: self._heard},
                                  on_connect=self._resync)
        self._listener.start()
        with suppress(TimeoutError):  # no database yet: the listener keeps retrying
            await asyncio.wait_for(self._listener.connected.wait(), timeout=5)

    async def stop(self) -> None:
        # The listener first: a notification heard while the tasks below are cancelled would
        # start a new read, which nothing would wait for (its connection outliving the engine).
        self._stopping = True
        if self._listener is not None:
            await self._listener.stop()
        if self._changed is not None:
            self._changed.set()  # SQLite: the poll ends by itself
        for task in (self._task, self._flush):
            if task is not None:
                # Each ends after the read it may be in (a read cancelled half-way would leave
                # its connection to the garbage collector); one stuck on a lock is cancelled.
                with suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), STOP_WAIT)
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        if self._changed is not None:
            queue.drop_waker(self._changed)
        for _, _, future in self._waiters:
            future.cancel()

    async def wait(self, job_id: int, until: Callable[[JobState], bool]) -> JobState:
        """The job's state once ``until(state)`` holds (checked now and at every change); bound
        the wait with ``asyncio.timeout``.

        Raises:
            LookupError: no such job.
        """
        future: asyncio.Future[JobState] = asyncio.get_running_loop().create_future()
        entry = (job_id, until, future)
        self._waiters.append(entry)
        try:
            async with self.sessions() as session:
                job = await session.get(Job, job_id)
            if job is None:
                raise LookupError(f"no job {job_id}")
            state = state_of(job)
            if until(state):
                return state
            return await future
        finally:
            self._waiters.remove(entry)

    def _emit(self, state: JobState) -> None:
        if self.on_change is not None:
            try:
                self.on_change(state)
            except Exception:
                log.exception("delivering job %s failed", state.id)
        for job_id, until, future in self._waiters:
            if job_id == state.id and not future.done() and until(state):
                future.set_result(state)

    # --- PostgreSQL ---------------------------------------------------------------------------

    def _heard(self, payload: str) -> None:
        try:
            job_id = int(json.loads(payload)["job"])
        except (ValueError, KeyError, TypeError):
            return
        if not (self.wanted() or self._waiters):
            return
        self._pending.add(job_id)
        if not self._stopping and (self._flush is None or self._flush.done()):
            self._flush = asyncio.create_task(self._read_pending())

    def _resync(self) -> None:
        self._pending.add(-1)  # -1: every active job
        if not self._stopping and (self._flush is None or self._flush.done()):
            self._flush = asyncio.create_task(self._read_pending())

    async def _read_pending(self) -> None:
        while self._pending:
            ids, self._pending = self._pending, set()
            stmt = select(Job)
            if -1 in ids:
                stmt = stmt.where(Job.status.in_([str(s) for s in ACTIVE]) | Job.id.in_(ids))
            else:
                stmt = stmt.where(Job.id.in_(ids))
            try:
                async with self.sessions() as session:
                    jobs = (await session.execute(stmt.order_by(Job.id))).scalars().all()
            except Exception:
                log.exception("reading changed jobs failed")
                return
            for job in jobs:
                self._emit(state_of(job))

    # --- SQLite -------------------------------------------------------------------------------

    async def _poll(self, changed: asyncio.Event) -> None:
        active: set[int] = set()  # jobs queued or running at the last poll
        while not self._stopping:
            # A timer (SQLite has no way to announce a change), or this process's own commit.
            with suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await changed.wait()
            changed.clear()
            if self._stopping:
                return
            waited = {job_id for job_id, _, _ in self._waiters}
            if not (self.wanted() or waited):
                continue
            try:
                async with self.sessions() as session:
                    jobs = (await session.execute(select(Job).where(
                        Job.status.in_([str(s) for s in ACTIVE]) | Job.id.in_(active | waited))
                        .order_by(Job.id))).scalars().all()
            except Exception:
                log.exception("polling the jobs failed")
                continue
            active = {job.id for job in jobs if job.status in ACTIVE}
            seen = {job.id: job.updated_at for job in jobs}
            for job in jobs:
                if self._seen.get(job.id) != job.updated_at:
                    self._emit(state_of(job))
            self._seen = seen
