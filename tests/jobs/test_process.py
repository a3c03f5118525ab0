"""Workers as real processes (``labelhub worker``): a killed worker loses nothing, and job
changes made in the worker process reach the server's sockets."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette

from server.settings import Settings
from tests._db import ROOT
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


@contextmanager
def serve_process(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``labelhub serve`` with its default of one worker, on the settings' database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELHUB_")}
    env.update({"LABELHUB_DATABASE_URL": settings.resolved_database_url,
                "LABELHUB_DATA_DIR": str(settings.data_dir), "LABELHUB_PORT": str(_free_port()),
                "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--log-level",
                             "warning"], env=env, cwd=tmp_path)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_serve_runs_a_worker_at_lower_priority_and_takes_it_down(
        app: Starlette, settings: Settings, project: int, tmp_path: Path) -> None:
    with serve_process(settings, tmp_path) as serve_proc:
        job_id = await queue_job(app, "count", project, {"to": 2, "step_seconds": 0})
        # A bound, not a figure: the worker starts at nice 10, and beside the suite's other
        # workers and browsers it may get a few percent of a core for its ~2 s of imports (a
        # fresh-clone CI run waited over 30 s).
        done = await wait_job(app, job_id, ended, within=300)
        assert done.status == "done"  # `make run` needs no more
        (worker,) = _children(serve_proc.pid)
        nice = os.getpriority(os.PRIO_PROCESS, worker)
        assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
        watch = os.pidfd_open(worker)  # readable once the worker has exited
        try:
            serve_proc.kill()  # even a server killed outright takes its worker down
            serve_proc.wait(timeout=30)
            readable, _, _ = select.select([watch], [], [], 30)
            assert readable == [watch]
        finally:
            os.close(watch)
