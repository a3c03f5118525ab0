"""Fixtures for job tests: a project, an in-process worker, the app's job feed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from server.db import transaction
from server.jobs import defer
from server.jobs.feed import JobFeed
from server.jobs.worker import Worker
from server.protocol import JobState
from server.settings import Settings
from tests._db import ROOT
from tests.conftest import Api, make_project


@pytest.fixture
async def project(admin: Api) -> int:
    return await make_project(admin, "Jobs")


@asynccontextmanager
async def running_worker(app: Starlette, **kwargs: Any) -> AsyncIterator[Worker]:
    """A worker in this process on the app's database, stopped (politely) at the end."""
    worker = Worker(app.state.settings, app.state.sessions, **kwargs)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        with suppress(asyncio.CancelledError):
            await task


async def queue_job(app: Starlette, kind: str, project_id: int | None, params: dict[str, Any],
                    created_by: int | None = None, dedupe: bool = False) -> int:
    async with transaction(app.state.sessions) as session:
        return await defer(session, kind=kind, project_id=project_id, params=params,
                           created_by=created_by, dedupe=dedupe)


def feed(app: Starlette) -> JobFeed:
    return app.state.jobs  # type: ignore[no-any-return]


async def wait_job(app: Starlette, job_id: int, until: Callable[[JobState], bool],
                   within: float = 120.0) -> JobState:
    """Await the job's state satisfying ``until`` (heard through the feed, not by sleeping).
    ``within`` only bounds a hang: worker processes start slowly on a loaded machine."""
    async with asyncio.timeout(within):
        return await feed(app).wait(job_id, until)


def ended(state: JobState) -> bool:
    return state.status in ("done", "failed", "cancelled")


@contextmanager
def worker_process(settings: Settings, tmp_path: Path, lease: float = 30.0) -> Iterator[
        subprocess.Popen[bytes]]:
    """A real ``labelhub worker`` process on the settings' database (this checkout's code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELHUB_")}
    env.update({"LABELHUB_DATABASE_URL": settings.resolved_database_url,
                "LABELHUB_DATA_DIR": str(settings.data_dir),
                "LABELHUB_JOB_LEASE_SECONDS": str(lease), "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "worker", "--log-level", "warning"],
                            env=env, cwd=tmp_path)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
