"""The worker: claim a job, run its task, renew the lease meanwhile, record the end. Knows no task.

``labelhub worker`` runs one per process (``labelhub serve`` starts one itself unless
``LABELHUB_WORKERS=0``). It runs one job at a time; run more workers for more at once, on any
machine sharing the PostgreSQL database.

Waking: on PostgreSQL the worker LISTENs for :data:`~server.jobs.queue.WAKE_CHANNEL`, rung by
every :func:`~server.jobs.queue.defer` at commit, and polls every 2 s in case a ring was lost;
on SQLite (one machine, no NOTIFY) it polls every 0.5 s: one indexed ``UPDATE`` finding nothing.

The lease: a separate asyncio task renews it every ``min(0.5 s, lease / 3)`` and reads the
cancel flag in the same statement. A task reporting progress stops at its next report (which
reads the flag too); one that does not is cancelled as an asyncio task a quarter second after
the heartbeat saw the flag, so a cancel takes effect within a second either way. A worker that dies keeps the
job until its lease runs out; then another worker claims it, and the task runs again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server._listen import Listener, asyncpg_dsn
from server.db import is_sqlite
from server.jobs import queue, registry
from server.jobs.context import Cancelled, JobContext
from server.jobs.status import Status, on_claim
from server.settings import Settings
from server.telemetry.metrics import observe_job

__all__ = ["Worker", "worker_name"]

log = logging.getLogger("labelhub.jobs")
SQLITE_POLL = 0.5
POSTGRES_POLL = 2.0
IDLE_EVERY = 30.0  # seconds between an idle worker's runs of the registered idle hooks
CANCEL_GRACE = 0.25  # seconds a task has to stop by itself once cancellation is seen


async def _call(fn: registry.TaskFn, ctx: JobContext) -> dict[str, Any] | None:
    return await fn(ctx)


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Runs jobs until :meth:`stop`; a job running then goes back to the queue, progress kept."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], *,
                 name: str | None = None, kinds: list[str] | None = None) -> None:
        self.settings, self.sessions = settings, sessions
        self.name = name or worker_name()
        self.kinds = kinds
        self.lease = settings.job_lease_seconds
        self._stopping = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=settings.worker_threads,
                                            thread_name_prefix="labelhub-job")

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Claim and run jobs until :meth:`stop`."""
        registry.load()
        kinds = self.kinds if self.kinds is not None else registry.kinds()
        url = self.settings.resolved_database_url
        waker = queue.local_waker()
        listener: Listener | None = None
        if not is_sqlite(url):
            listener = Listener(asyncpg_dsn(url),
                                {queue.WAKE_CHANNEL: lambda _payload: waker.set()},
                                on_connect=waker.set)
            listener.start()
        poll = SQLITE_POLL if listener is None else POSTGRES_POLL
        log.info("worker %s runs %s", self.name, ", ".join(kinds) or "no kinds")
        idle_at = -IDLE_EVERY  # the first idle moment runs them
        try:
            while not self._stopping.is_set():
                waker.clear()
                try:
                    job = await queue.claim(self.sessions, self.name, kinds, self.lease)
                except Exception:  # the database is away: try again after the poll interval
                    log.exception("claiming a job failed")
                    job = None
                if job is not None:
                    try:
                        await self.run_job(job)
                    except Exception:  # recording the end failed: the lease runs out, and
                        log.exception("job %s: recording its end failed", job.id)  # it reruns
                    continue
                if time.monotonic() - idle_at >= IDLE_EVERY:
                    idle_at = time.monotonic()
                    await self._idle()
                stop = asyncio.ensure_future(self._stopping.wait())
                wake = asyncio.ensure_future(waker.wait())
                try:
                    await asyncio.wait({stop, wake}, timeout=poll,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                    wake.cancel()
        finally:
            queue.drop_waker(waker)
            if listener is not None:
                await listener.stop()
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _idle(self) -> None:
        for hook in registry.idle_hooks():
            try:
                await hook(self.sessions)
            except Exception:  # a failing check must not stop the worker; it runs again later
                log.exception("idle hook %s failed", getattr(hook, "__qualname__", hook))

    async def run_job(self, job: queue.Claimed) -> None:
        """Run one claimed job to its end (or hand it back when the worker stops)."""
        decision = on_claim(job.attempts, job.cancel_requested)
        fn = registry.get(job.kind)
        if not decision.run or fn is None:
            await queue.finish(self.sessions, job.id, job.project_id, self.name,
                               decision.final or Status.FAILED,
                               error=decision.error or f"no task for kind {job.kind!r}")
            return
        ctx = JobContext(job_id=job.id, project_id=job.project_id, kind=job.kind,
                         params=job.params, settings=self.settings, sessions=self.sessions,
                         worker=self.name, attempts=job.attempts, resume_from=job.progress_done,
                         executor=self._executor)
        log.info("job %s (%s) started, attempt %s", job.id, job.kind, job.attempts)
        started = time.monotonic()
        runner = asyncio.create_task(_call(fn, ctx), name=f"job-{job.id}")
        lost = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(ctx, runner, lost), name=f"lease-{job.id}")
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not runner.done():  # the worker is stopping: hand the job back, progress kept
                runner.cancel()
                with suppress(BaseException):
                    await runner
                if not lost.is_set():
                    await queue.release(self.sessions, job.id, job.project_id, self.name)
                log.info("job %s handed back to the queue", job.id)
                return
        finally:
            stopping.cancel()
            beat.cancel()
            with suppress(asyncio.CancelledError):
                await beat
        if lost.is_set():
            log.warning("job %s: lease lost to another worker; dropped", job.id)
            return
        status, result, error = self._outcome(ctx, runner)
        await queue.finish(self.sessions, job.id, job.project_id, self.name, status,
                           result=result, error=error, progress=ctx.latest)
        observe_job(job.kind, str(status), time.monotonic() - started)
        log.info("job %s %s", job.id, status)

    @staticmethod
    def _outcome(ctx: JobContext, runner: asyncio.Task[Any]) -> tuple[
            Status, dict[str, Any] | None, str | None]:
        if runner.cancelled():  # the heartbeat saw the cancel flag and stopped the task
            return Status.CANCELLED, None, None
        exc = runner.exception()
        if isinstance(exc, Cancelled):
            return Status.CANCELLED, None, None
        if isinstance(exc, queue.LeaseLost):
            return Status.FAILED, None, "lease lost"
        if exc is not None:
            log.error("job %s failed", ctx.job_id, exc_info=exc)
            return Status.FAILED, None, f"{type(exc).__name__}: {exc}"[:2000]
        result = runner.result()
        if result is not None and not isinstance(result, dict):
            return Status.FAILED, None, f"the task returned {type(result).__name__}, not a dict"
        try:
            json.dumps(result)
        except (TypeError, ValueError) as err:
            return Status.FAILED, None, f"the task's result is not JSON: {err}"
        return Status.DONE, result, None

    async def _heartbeat(self, ctx: JobContext, runner: asyncio.Task[Any],
                         lost: asyncio.Event) -> None:
        interval = min(0.5, self.lease / 3)
        while not runner.done():
            await asyncio.sleep(interval)  # a timer: the lease is renewed on a schedule
            try:
                flag = await queue.heartbeat(self.sessions, ctx.job_id, self.name, self.lease)
            except queue.LeaseLost:
                lost.set()
                runner.cancel()
                return
            except Exception:  # a database blip: the lease has two more beats of slack
                log.exception("renewing the lease of job %s failed", ctx.job_id)
                continue
            if flag and not ctx.cancel_requested:
                ctx.cancel_requested = True  # its next progress report raises Cancelled
                # A task that reports nothing (or is inside run_cpu) is stopped from outside.
                asyncio.get_running_loop().call_later(CANCEL_GRACE, runner.cancel)
