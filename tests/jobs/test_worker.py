"""The worker process loop, run in this process: run, cancel, fail, stop and hand back."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette

from server.db import dispose, make_engine, make_sessionmaker, transaction
from server.jobs import JobContext, queue, task
from server.jobs.registry import on_idle
from server.jobs.worker import Worker
from server.models import Job
from tests.jobs.conftest import ended, queue_job, running_worker, wait_job


@task("test_fail")
async def _fail(ctx: JobContext) -> dict[str, Any]:
    raise ValueError(f"bad input {ctx.params.get('n')}")


@task("test_quiet")
async def _quiet(ctx: JobContext) -> None:
    """Reports no progress: only the lease heartbeat can stop it."""
    await ctx.progress(1, 2)
    await asyncio.Event().wait()


_idle_seen: list[asyncio.Event] = []


@on_idle
async def _failing_check(sessions: Any) -> None:
    """An idle hook that fails while the test below watches: the worker logs it and goes on.
    (Registered for the whole run: other tests' workers find nothing to do here.)"""
    for event in _idle_seen:
        event.set()
    if _idle_seen:
        raise RuntimeError("a failing idle check")


async def test_an_idle_worker_runs_the_idle_hooks_and_survives_their_failure(
        app: Starlette, project: int) -> None:
    seen = asyncio.Event()
    _idle_seen.append(seen)
    try:
        async with running_worker(app):
            await seen.wait()  # the first idle moment runs the hooks
            job_id = await queue_job(app, "count", project, {"to": 2, "step_seconds": 0})
            state = await wait_job(app, job_id, ended)
        assert state.status == "done"
    finally:
        _idle_seen.remove(seen)


async def test_worker_runs_a_job_to_the_end(app: Starlette, project: int) -> None:
    job_id = await queue_job(app, "count", project, {"to": 5, "step_seconds": 0})
    async with running_worker(app):
        state = await wait_job(app, job_id, ended)
    assert state.status == "done"
    assert state.result == {"counted": 5, "resumed_from": 0, "attempts": 1}
    assert (state.progress.done, state.progress.total) == (5, 5)
    assert state.started_at is not None and state.finished_at is not None


async def test_a_failing_task_records_its_error(app: Starlette, project: int) -> None:
    job_id = await queue_job(app, "test_fail", project, {"n": 7})
    async with running_worker(app):
        state = await wait_job(app, job_id, ended)
    assert state.status == "failed" and state.error == "ValueError: bad input 7"


async def _cancel(app: Starlette, job_id: int) -> None:
    async with transaction(app.state.sessions) as session:
        job = await session.get(Job, job_id)
        assert job is not None
        assert await queue.request_cancel(session, job)


async def test_cancel_mid_job_stops_it_and_keeps_progress(app: Starlette, project: int) -> None:
    job_id = await queue_job(app, "count", project, {"to": 10_000, "step_seconds": 0.01})
    async with running_worker(app):
        await wait_job(app, job_id, lambda s: s.progress.done >= 3)
        await _cancel(app, job_id)
        state = await wait_job(app, job_id, ended)
    assert state.status == "cancelled" and state.cancel_requested
    assert 3 <= state.progress.done < 10_000 and state.progress.total == 10_000


async def test_cancel_stops_a_task_that_reports_nothing(app: Starlette, project: int) -> None:
    job_id = await queue_job(app, "test_quiet", project, {})
    async with running_worker(app):
        await wait_job(app, job_id, lambda s: s.progress.done == 1)
        await _cancel(app, job_id)
        state = await wait_job(app, job_id, ended)
    assert state.status == "cancelled" and state.progress.done == 1


async def test_a_stopping_worker_hands_its_job_back(app: Starlette, project: int) -> None:
    job_id = await queue_job(app, "count", project, {"to": 10_000, "step_seconds": 0.01})
    async with running_worker(app):
        await wait_job(app, job_id, lambda s: s.progress.done >= 2)
    state = await wait_job(app, job_id, lambda s: s.status == "queued")
    kept = state.progress.done
    assert kept >= 2 and state.attempts == 0
    await _cancel(app, job_id)  # a queued job ends at once, keeping the progress
    state = await wait_job(app, job_id, ended)
    assert state.status == "cancelled" and state.progress.done == kept


_runs: list[int] = []


@task("test_record")
async def _record(ctx: JobContext) -> dict[str, Any]:
    _runs.append(ctx.job_id)
    await asyncio.sleep(0)  # let the other worker interleave
    return {"worker": ctx.worker}


async def test_two_workers_never_run_the_same_job(app: Starlette, project: int) -> None:
    """Two workers, each with its own engine (as separate processes have), claim concurrently."""
    _runs.clear()
    ids = [await queue_job(app, "test_record", project, {"i": i}) for i in range(60)]
    engines = [make_engine(app.state.settings.resolved_database_url) for _ in range(2)]
    try:
        workers = [Worker(app.state.settings, make_sessionmaker(e), name=f"w{i}",
                          kinds=["test_record"]) for i, e in enumerate(engines)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        states = [await wait_job(app, job_id, ended) for job_id in ids]
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
    finally:
        for e in engines:
            await dispose(e)
    assert sorted(_runs) == ids  # every job ran, and exactly once
    assert all(s.status == "done" and s.attempts == 1 for s in states)
    by = {s.result["worker"] for s in states if s.result}
    assert by == {"w0", "w1"}  # both took part: the claims really raced
