"""server/jobs/feed.py: every change of a job reaches the feed. On SQLite the feed polls, but a
change committed in its own process (a job queued here, a worker running here) is read at once:
with a poll of an hour, only that ring can deliver these states."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette

from server.jobs.feed import JobFeed
from server.protocol import JobState
from tests.jobs.conftest import queue_job, running_worker


async def test_changes_made_in_this_process_are_heard_without_a_poll(app: Starlette,
                                                                     project: int) -> None:
    heard: list[JobState] = []
    done = asyncio.Event()

    def on_change(state: JobState) -> None:
        heard.append(state)
        if state.status == "done":
            done.set()

    feed = JobFeed(app.state.sessions, app.state.settings.resolved_database_url,
                   on_change=on_change, poll=3600.0)
    await feed.start()
    try:
        job_id = await queue_job(app, "count", project, {"to": 3, "step_seconds": 0})
        async with running_worker(app), asyncio.timeout(60):  # a bound on a hang
            await done.wait()
    finally:
        await feed.stop()
    assert {s.id for s in heard} == {job_id}
    assert heard[-1].status == "done" and heard[-1].result is not None
    assert heard[-1].result["counted"] == 3
