"""What a task function receives in the worker process: :class:`JobContext`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.jobs import queue
from server.settings import Settings

__all__ = ["PROGRESS_INTERVAL", "Cancelled", "JobContext"]

T = TypeVar("T")
#: Seconds between stored progress reports of one job (the last report always goes).
PROGRESS_INTERVAL = 0.25


class Cancelled(Exception):
    """Raised by :meth:`JobContext.progress` when someone cancelled the job. A task may catch it
    to tidy up, and should then re-raise it; what it stored stays stored."""


@dataclass(eq=False)
class JobContext:
    """One claimed job, as its task function sees it.

    ``resume_from`` is the progress stored by an earlier run of this job (a worker that was
    stopped or died mid-job): a task may continue from there, but must not rely on it alone
    to skip stored work (reports are throttled, so a little may be redone).
    """

    job_id: int
    project_id: int | None
    kind: str
    params: dict[str, Any]
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    worker: str
    attempts: int = 1
    resume_from: int = 0
    executor: Executor | None = None
    cancel_requested: bool = False
    #: The latest ``(done, total)`` given to :meth:`progress`, stored or not: the worker stores
    #: it with the job's end, so a cancelled job keeps its true count.
    latest: tuple[int, int] | None = None
    _last_report: float = field(default=0.0, repr=False)

    async def progress(self, done: int, total: int) -> None:
        """Store progress (at most every :data:`PROGRESS_INTERVAL`, and always when ``done``
        reaches ``total``) and tell the project's sockets.

        Raises:
            Cancelled: cancellation was requested; stop now.
        """
        self.latest = (done, total)
        if self.cancel_requested:
            raise Cancelled(self.job_id)
        now = time.monotonic()
        if done < total and now - self._last_report < PROGRESS_INTERVAL:
            return
        self._last_report = now
        if await queue.report_progress(self.sessions, self.job_id, self.project_id, self.worker,
                                       done, total):
            self.cancel_requested = True
            raise Cancelled(self.job_id)

    async def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy ``fn(*args)`` in the worker's thread pool (``LABELHUB_WORKER_THREADS``),
        off the event loop, so the lease heartbeat goes on meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
