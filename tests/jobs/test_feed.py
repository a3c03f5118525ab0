"""server/jobs/feed.py: every change of a job reaches the feed. On SQLite the feed polls, but a
change committed in its own process (a job queued, claimed, advanced or ended here) is read at
once: with a poll of an hour, only that ring can deliver these states. (On PostgreSQL each
change is a NOTIFY.) The changes are made one by one through the queue, each heard before the
next is made."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.applications import Starlette

from server.jobs import queue
from server.jobs.feed import JobFeed
from server.jobs.status import Status
from server.protocol import JobState
from tests.jobs.conftest import queue_job


async def test_changes_made_in_this_process_are_heard_without_a_poll(app: Starlette,
                                                                     project: int) -> None:
    heard: list[JobState] = []
    changed = asyncio.Event()

    def on_change(state: JobState) -> None:
        heard.append(state)
        changed.set()

    async def hear(until: Callable[[JobState], bool]) -> JobState:
        async with asyncio.timeout(60):  # a bound on a hang, not a speed check
            while not (heard and until(heard[-1])):
                changed.clear()
                await changed.wait()
        return heard[-1]

    sessions = app.state.sessions
    feed = JobFeed(sessions, app.state.settings.resolved_database_url, on_change=on_change,
                   poll=3600.0)
    await feed.start()
    try:
        job_id = await queue_job(app, "count", project, {"to": 2})
        assert (await hear(lambda s: s.status == "queued")).id == job_id
        claimed = await queue.claim(sessions, "w", ["count"], 30.0)
        assert claimed is not None and claimed.id == job_id
        await hear(lambda s: s.status == "running")
        await queue.report_progress(sessions, job_id, project, "w", 1, 2)
        assert (await hear(lambda s: s.progress.done == 1)).status == "running"
        assert await queue.finish(sessions, job_id, project, "w", Status.DONE,
                                  result={"counted": 2}, progress=(2, 2))
        done = await hear(lambda s: s.status == "done")
    finally:
        await feed.stop()
    assert done.result == {"counted": 2} and (done.progress.done, done.progress.total) == (2, 2)
    assert {s.id for s in heard} == {job_id}
