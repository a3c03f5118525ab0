"""Profile the import job in process: ``python -m benchmarks._formats_profile [--db sqlite|postgresql]
[--formats labelstudio,cvat,json] [--profile N] [--tasks N]``.

Builds the files of ``benchmarks/formats.py`` (20,000 tasks x 10 boxes), then for each format a
fresh project of as many 640x480 images, queues an import job and runs the job function
(``server.formats._jobs.import_job``) in this process, the way the worker does: the parse on a
thread, the rest on the event loop. Prints wall and CPU time of this process (the database
server's CPU is not in it), and with ``--profile N`` the N top entries of a cProfile of the
event-loop thread (the parse thread is not profiled; it is the format's own cost).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks._ai_search import scratch_postgres
from benchmarks.formats import (
    FOREIGN_TASKS,
    _foreign_files,
    _images,
    _project,
    bench_settings,
    database_cpu,
)
from server.app import create_app, ensure_admin
from server.cli import _alembic_upgrade
from server.db import make_engine, make_sessionmaker, transaction
from server.formats._jobs import IMPORT_KIND, import_job
from server.jobs import JobContext, defer
from server.jobs.queue import claim, finish
from server.jobs.status import Status
from server.models import User
from server.settings import Settings
from server.storage import open_store


async def _one(sessions: Any, settings: Settings, user_id: int, fmt: str, body: bytes, tasks: int,
               profile: int, executor: ThreadPoolExecutor) -> None:
    pid = await _project(sessions, fmt)
    await _images(sessions, pid, tasks)
    key = f"transfers/import-{pid}-prof.upload"
    await open_store(settings).put_many([(key, body)])
    async with transaction(sessions) as s:
        await defer(s, kind=IMPORT_KIND, project_id=pid, created_by=user_id,
                    params={"format": fmt, "key": key, "mode": None, "dry_run": False, "user_id": user_id})
    claimed = await claim(sessions, "prof", [IMPORT_KIND], 600)
    assert claimed is not None
    ctx = JobContext(claimed.id, pid, IMPORT_KIND, claimed.params, settings, sessions, "prof",
                     executor=executor)
    prof = cProfile.Profile(time.thread_time) if profile else None  # CPU of the loop thread
    before = await database_cpu(sessions)
    t0, c0 = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    result = await import_job(ctx)
    if prof is not None:
        prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await finish(sessions, claimed.id, pid, "prof", Status.DONE, result=result)
    after = await database_cpu(sessions)
    db_cpu = sum(t - before.get(p, 0.0) for p, t in after.items())
    assert result["status"] == 200, str(result)[:500]
    assert result["report"]["images_with_object_changes"] == tasks, result["report"]
    print(f"{fmt}: {len(body) / 2**20:.0f} MB, wall {wall:.1f} s, process CPU {cpu:.1f} s, "
          f"PostgreSQL backends' CPU {db_cpu:.1f} s, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(profile)
        print(out.getvalue(), flush=True)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue(), flush=True)


async def _run(url: str, data_dir: Path, formats: list[str], tasks: int, profile: int) -> None:
    settings = bench_settings(url, data_dir)
    await asyncio.to_thread(_alembic_upgrade, settings)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    app = create_app(settings)
    app.state.settings, app.state.sessions = settings, sessions
    await ensure_admin(app)
    async with transaction(sessions) as s:
        user_id = (await s.execute(select(User.id))).scalars().first()
    files = _foreign_files(tasks)
    executor = ThreadPoolExecutor(1)
    try:
        for fmt in formats:
            await _one(sessions, settings, int(user_id or 0), fmt, files[fmt], tasks, profile, executor)
    finally:
        executor.shutdown()
        await engine.dispose()


async def main_async(args: argparse.Namespace) -> None:
    formats = args.formats.split(",")
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            await _run(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", Path(tmp), formats, args.tasks,
                       args.profile)
        return
    async with scratch_postgres() as url:
        if url is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            await _run(url, Path(tmp), formats, args.tasks, args.profile)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--formats", default="labelstudio,cvat,json")
    parser.add_argument("--tasks", type=int, default=FOREIGN_TASKS)
    parser.add_argument("--profile", type=int, default=0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
