"""defer / claim / heartbeat / finish / cancel on the jobs table, on SQLite and PostgreSQL."""

from __future__ import annotations

from starlette.applications import Starlette

from server.db import transaction
from server.jobs import Status, queue
from server.models import Job
from tests.jobs.conftest import queue_job


async def test_defer_claim_finish(app: Starlette, project: int) -> None:
    sessions = app.state.sessions
    job_id = await queue_job(app, "count", project, {"to": 3})
    claimed = await queue.claim(sessions, "w1", ["count"], 30)
    assert claimed is not None and claimed.id == job_id
    assert (claimed.kind, claimed.params, claimed.attempts) == ("count", {"to": 3}, 1)
    assert await queue.claim(sessions, "w2", ["count"], 30) is None  # it is taken
    assert await queue.heartbeat(sessions, job_id, "w1", 30) is False
    assert await queue.report_progress(sessions, job_id, project, "w1", 2, 3) is False
    assert await queue.finish(sessions, job_id, project, "w1", Status.DONE, result={"n": 3})
    async with sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    assert (job.status, job.result, job.progress_done, job.progress_total) == ("done", {"n": 3}, 2, 3)
    assert job.finished_at is not None and job.lease_until is None


async def test_claim_takes_only_known_kinds_oldest_first(app: Starlette, project: int) -> None:
    sessions = app.state.sessions
    other = await queue_job(app, "elsewhere", project, {})
    first = await queue_job(app, "count", project, {"to": 1})
    second = await queue_job(app, "count", project, {"to": 2})
    got = [await queue.claim(sessions, "w", ["count"], 30) for _ in range(3)]
    assert [c.id if c else None for c in got] == [first, second, None]
    assert other not in [c.id for c in got if c]


async def test_dedupe_returns_the_active_job(app: Starlette, project: int) -> None:
    a = await queue_job(app, "count", project, {"to": 5, "x": [1, 2]}, dedupe=True)
    b = await queue_job(app, "count", project, {"x": [1, 2], "to": 5}, dedupe=True)
    c = await queue_job(app, "count", project, {"to": 6}, dedupe=True)
    d = await queue_job(app, "count", project, {"to": 5, "x": [1, 2]})  # no dedupe: a new one
    assert a == b and len({a, c, d}) == 3


async def test_expired_lease_is_claimed_again(app: Starlette, project: int) -> None:
    sessions = app.state.sessions
    job_id = await queue_job(app, "count", project, {})
    assert await queue.claim(sessions, "dead", ["count"], 0.001) is not None
    again = await queue.claim(sessions, "alive", ["count"], 30)
    assert again is not None and again.id == job_id and again.attempts == 2
    # The first worker's writes no longer land: its lease is gone.
    try:
        await queue.heartbeat(sessions, job_id, "dead", 30)
    except queue.LeaseLost:
        pass
    else:
        raise AssertionError("a worker that lost its lease renewed it")
    assert not await queue.finish(sessions, job_id, project, "dead", Status.DONE)


async def test_release_hands_the_job_back(app: Starlette, project: int) -> None:
    sessions = app.state.sessions
    job_id = await queue_job(app, "count", project, {})
    assert await queue.claim(sessions, "w", ["count"], 30) is not None
    await queue.report_progress(sessions, job_id, project, "w", 4, 10)
    await queue.release(sessions, job_id, project, "w")
    again = await queue.claim(sessions, "w2", ["count"], 30)
    assert again is not None and (again.attempts, again.progress_done) == (1, 4)


async def test_cancel_queued_ends_it_and_running_flags_it(app: Starlette, project: int) -> None:
    sessions = app.state.sessions
    queued = await queue_job(app, "count", project, {})
    running = await queue_job(app, "count", project, {"to": 2})
    async with transaction(sessions) as session:
        job = await session.get(Job, queued)
        assert job is not None and await queue.request_cancel(session, job)
    claimed = await queue.claim(sessions, "w", ["count"], 30)
    assert claimed is not None and claimed.id == running  # the cancelled one is not claimed
    async with transaction(sessions) as session:
        job = await session.get(Job, running)
        assert job is not None and await queue.request_cancel(session, job)
        assert job.status == "running" and job.cancel_requested
    assert await queue.heartbeat(sessions, running, "w", 30) is True
    async with transaction(sessions) as session:
        job = await session.get(Job, queued)
        assert job is not None and job.status == "cancelled"
        assert not await queue.request_cancel(session, job)  # ended: nothing changes
