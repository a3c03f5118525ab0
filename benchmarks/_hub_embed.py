"""A worker embedding a project while the hub serves edits, for ``benchmarks.hub`` (phase
``embedding``): generated 640 x 480 JPEGs, a real ``labelhub worker`` process started as
``labelhub serve`` starts its own (``server.cli._worker_preexec``: nice +10, ended with its
parent), its scheduling switched between variants on every thread, and readings of its job's
progress (the ``jobs`` row) and resident memory (/proc/PID/status VmRSS)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import cv2
import numpy as np

from benchmarks import _hub_load as load

ROOT = Path(__file__).resolve().parent.parent


def jpegs(start: int, n: int) -> list[bytes]:
    """``n`` distinct 640 x 480 JPEGs (quality 90) from scikit-image's photos: varied crops,
    flips, brightness and noise, so no two share a sha256 (the store would embed them once)."""
    from skimage import data

    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(),
               data.immunohistochemistry(), data.hubble_deep_field()]
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        image = sources[i % len(sources)]
        h, w = image.shape[:2]
        y, x = (i * 7) % (h // 4), (i * 13) % (w // 4)
        crop = image[y: y + h * 3 // 4, x: x + w * 3 // 4]
        if (i // len(sources)) % 2:
            crop = crop[:, ::-1]
        bgr = cv2.cvtColor(cv2.resize(np.ascontiguousarray(crop), (640, 480)), cv2.COLOR_RGB2BGR)
        noise = rng.integers(-8, 9, bgr.shape, dtype=np.int16) + (i % 31 - 15)
        bgr = np.clip(bgr.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``labelhub worker`` as ``labelhub serve`` starts it (the same pre-exec hook)."""
    from server.cli import _worker_preexec

    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker", "--log-level",
                             "warning"], cwd=ROOT, env=env, preexec_fn=_worker_preexec)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # hands its job back to the queue and exits
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def threads(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def policy(pid: int) -> str:
    """Every thread's (policy, nice), e.g. ``SCHED_OTHER nice 10 x3, SCHED_OTHER nice 19 x1``."""
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_IDLE: "SCHED_IDLE",
             os.SCHED_BATCH: "SCHED_BATCH"}
    seen: dict[str, int] = {}
    for tid in threads(pid):
        try:
            key = (f"{names.get(os.sched_getscheduler(tid), '?')} nice "
                   f"{os.getpriority(os.PRIO_PROCESS, tid)}")
        except OSError:
            continue  # the thread ended meanwhile
        seen[key] = seen.get(key, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(seen.items()))


def set_policy(pid: int, idle: bool) -> None:
    """Put every thread of ``pid`` under SCHED_IDLE, or back under SCHED_OTHER (niceness kept:
    Linux keeps a thread's nice value across policy changes)."""
    for tid in threads(pid):
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE if idle else os.SCHED_OTHER,
                                  os.sched_param(0))
        except (ProcessLookupError, PermissionError):
            pass  # ended meanwhile / not ours to raise


@dataclass
class Progress:
    done: int
    total: int
    status: str


async def job_progress(dsn: str, project: int) -> Progress | None:
    """The project's newest embed job, read straight from the jobs table."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT progress_done, progress_total, status FROM jobs WHERE project_id = $1 AND "
            "kind = 'embed' ORDER BY id DESC LIMIT 1", project)
    finally:
        await conn.close()
    return None if row is None else Progress(int(row[0]), int(row[1]), str(row[2]))


async def wait_for_progress(dsn: str, project: int, limit: float = 300.0) -> Progress:
    """Poll until the embed job has embedded its first batch (the network is loaded then)."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        progress = await job_progress(dsn, project)
        if progress is not None and progress.status == "running" and progress.done > 0:
            return progress
        await asyncio.sleep(0.2)  # polling a database row: there is no event to await here
    raise RuntimeError(f"the embed job reported no progress in {limit:.0f} s: {progress}")


@dataclass
class Sampler:
    """The worker's VmRSS and CPU time, sampled every half second while a window runs."""

    pid: int
    rss: list[int] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.rss.append(load.rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
