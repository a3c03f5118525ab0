"""server/jobs/feed.py: every change of a job reaches the feed. On SQLite the feed polls, but a
change committed in its own process (a job queued, claimed, advanced or ended here) is read at
once: with a poll of an hour, only that ring can deliver these states. (On PostgreSQL each
change is a NOTIFY.) The changes are made one by one through the queue, each heard before the
next is made."""

from __future__ import annotations

import asyncio
import json
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


async def test_a_stopping_feed_finishes_its_read_and_starts_no_other(app: Starlette,
                                                                     project: int) -> None:
    # A read cancelled half-way would leave its connection open past the engine's disposal, and
    # one started by a notification heard during stop() would run on after it.
    job_id = await queue_job(app, "count", project, {"to": 2})
    heard: list[JobState] = []
    feed = JobFeed(app.state.sessions, app.state.settings.resolved_database_url,
                   on_change=heard.append, poll=3600.0)
    await feed.start()
    feed._heard(json.dumps({"job": job_id}))  # as the listener does on a NOTIFY
    reading = feed._flush
    assert reading is not None and not reading.done()
    await feed.stop()
    assert reading.done() and not reading.cancelled()
    assert job_id in {s.id for s in heard}
    feed._heard(json.dumps({"job": job_id}))
    feed._resync()
    assert feed._flush is reading
