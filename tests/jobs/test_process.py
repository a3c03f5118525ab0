"""Workers as real processes (``labelhub worker``): a killed worker loses nothing, and job
changes made in the worker process reach the server's sockets."""

from __future__ import annotations

import signal
from pathlib import Path

from starlette.applications import Starlette

from server.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, login, make_project
from tests.hub.conftest import serve
from tests.jobs.conftest import ended, queue_job, running_worker, wait_job, worker_process


async def test_a_killed_worker_s_job_is_taken_over_and_continues(
        app: Starlette, settings: Settings, project: int, tmp_path: Path) -> None:
    job_id = await queue_job(app, "count", project, {"to": 30, "step_seconds": 0.05})
    with worker_process(settings, tmp_path, lease=1.0) as proc:
        running = await wait_job(app, job_id, lambda s: s.progress.done >= 5)
        assert running.status == "running" and running.attempts == 1
        proc.send_signal(signal.SIGKILL)  # no chance to hand the job back
        assert proc.wait(timeout=30) == -signal.SIGKILL
    stored = (await wait_job(app, job_id, lambda s: True)).progress.done
    assert stored >= 5
    # A second worker claims it once the dead one's lease has run out, and goes on from there.
    async with running_worker(app):
        state = await wait_job(app, job_id, ended)
    assert state.status == "done" and state.attempts == 2
    assert state.result is not None and state.result["resumed_from"] == stored
    assert state.result["counted"] == 30 and state.progress.done == 30


async def test_a_terminated_worker_hands_its_job_back(
        app: Starlette, settings: Settings, project: int, tmp_path: Path) -> None:
    job_id = await queue_job(app, "count", project, {"to": 1000, "step_seconds": 0.02})
    with worker_process(settings, tmp_path) as proc:
        await wait_job(app, job_id, lambda s: s.progress.done >= 3)
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    state = await wait_job(app, job_id, lambda s: True)
    assert state.status == "queued" and state.attempts == 0 and state.progress.done >= 3


async def test_job_events_from_a_worker_process_reach_the_project_s_sockets(
        settings: Settings, tmp_path: Path) -> None:
    async with serve(settings) as live:
        admin: Api = await login(live.app, ADMIN_EMAIL, ADMIN_PASSWORD)
        project = await make_project(admin, "Live jobs")
        other = await make_project(admin, "Elsewhere")
        ws = await live.connect(admin)
        await ws.request("hello", project=project)
        elsewhere = await queue_job(live.app, "count", other, {"to": 2, "step_seconds": 0})
        job_id = await queue_job(live.app, "count", project, {"to": 3, "step_seconds": 0.05})
        seen: list[dict[str, object]] = []
        with worker_process(settings, tmp_path):
            while True:
                event = await ws.event("job")
                seen.append(event["job"])
                if event["job"]["status"] == "done":
                    break
        await ws.close()
        await admin.client.aclose()
    assert {j["id"] for j in seen} == {job_id}  # nothing of the other project
    assert seen[-1]["progress"] == {"done": 3, "total": 3}
    if not settings.resolved_database_url.startswith("sqlite"):
        # Every change is announced on PostgreSQL; SQLite's 0.5 s poll may skip a short state.
        assert "running" in [j["status"] for j in seen]
    assert elsewhere != job_id
