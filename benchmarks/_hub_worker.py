"""A real ``labelhub worker`` beside the benchmark's hub, for the phases that measure live
editing while a job runs (``embedding``: benchmarks/_hub_embed.py; ``models``:
benchmarks/_hub_models.py): generated 640 x 480 JPEGs, the worker process started as
``labelhub serve`` starts its own (``server.cli._worker_preexec``), its threads' scheduling and
placement, a job's progress (the ``jobs`` row), its resident memory and CPU, and PostgreSQL's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import cv2
import numpy as np

from benchmarks import _hub_load as load
from client import RestClient

__all__ = ["SPIN", "JobEnded", "Phase", "Placement", "Progress", "Sampler", "cpu_delta", "job_progress", "jobs_status",
           "jpegs", "policy_of", "postgres_cpu", "set_policy", "start_worker", "stop_worker",
           "threads", "upload", "wait_for_progress"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Phase:
    """What a worker phase gets from ``benchmarks.hub``."""

    row: Callable[[str, str, str, str], None]
    latency: Callable[[load.Fanout], str]
    quick: bool
    url: str
    admin: RestClient
    env: dict[str, str]
    db_url: str
    hub_pid: int

    @property
    def dsn(self) -> str:
        return self.db_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def jpegs(start: int, n: int) -> list[bytes]:
    """``n`` distinct 640 x 480 JPEGs (quality 90) from scikit-image's photos: varied crops,
    flips, brightness and noise, so no two share a sha256 (the store would embed them once).
    Image ``i`` shows photo ``i % 6`` (a label a classifier can learn)."""
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


async def upload(admin: RestClient, project: int, start: int, n: int, prefix: str = "e"
                 ) -> list[int]:
    """Upload ``jpegs(start, n)`` in requests of 250; the image ids, in order."""
    t0, ids = time.perf_counter(), []
    for first in range(start, start + n, 250):
        files = await asyncio.to_thread(jpegs, first, min(250, start + n - first))
        ids += [item["id"] for item in await admin.upload_images(
            project, [(f"{prefix}{first + i}.jpg", data) for i, data in enumerate(files)])]
    print(f"  ({len(ids)} JPEGs generated and uploaded in {time.perf_counter() - t0:.0f} s)",
          flush=True)
    return ids


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``labelhub worker`` as ``labelhub serve`` starts it (the same pre-exec hook: nice +10,
    and on the heavy cores unless ``LABELHUB_CPU_SPLIT`` is off)."""
    from server.cli import _worker_preexec
    from server.offload import core_split

    split = core_split() if env.get("LABELHUB_CPU_SPLIT", "1").lower() not in (
        "0", "false", "no", "off") else None
    cores = split[1] if split else None
    return subprocess.Popen([sys.executable, "-m", "server.cli", "worker", "--log-level",
                             "warning"], cwd=ROOT, env=env,
                            preexec_fn=lambda: _worker_preexec(cores))


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


def policy_of(pid: int) -> str:
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


def postgres_cpu() -> dict[int, float]:
    """CPU seconds used so far by each ``postgres`` process this user can see (the server's
    and the worker's backends, the checkpointer ...), by pid: see :func:`cpu_delta`."""
    out: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() not in ("postgres", "postmaster"):
                continue
            out[int(entry)] = load.cpu_seconds(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`postgres_cpu` readings by the processes alive at
    both (one that ended or started in between is left out, not counted negative)."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


@dataclass
class Progress:
    done: int
    total: int
    status: str


async def job_progress(dsn: str, project: int, kind: str = "embed",
                       job: int | None = None) -> Progress | None:
    """A job's progress read straight from the jobs table: ``job``, or the project's newest
    of ``kind``."""
    conn = await asyncpg.connect(dsn)
    try:
        if job is not None:
            row = await conn.fetchrow(
                "SELECT progress_done, progress_total, status FROM jobs WHERE id = $1", job)
        else:
            row = await conn.fetchrow(
                "SELECT progress_done, progress_total, status FROM jobs WHERE project_id = $1 "
                "AND kind = $2 ORDER BY id DESC LIMIT 1", project, kind)
    finally:
        await conn.close()
    return None if row is None else Progress(int(row[0]), int(row[1]), str(row[2]))


class JobEnded(RuntimeError):
    """The job ended before :func:`wait_for_progress` saw it running."""


async def wait_for_progress(dsn: str, project: int, kind: str = "embed", job: int | None = None,
                            limit: float = 300.0, done: int = 1) -> Progress:
    """Poll until the job is running and has reported ``done`` (the network is loaded then)."""
    deadline = time.perf_counter() + limit
    progress = None
    while time.perf_counter() < deadline:
        progress = await job_progress(dsn, project, kind, job)
        if progress is not None and progress.status == "running" and progress.done >= done:
            return progress
        if progress is not None and progress.status in ("done", "failed", "cancelled"):
            raise JobEnded(f"the {kind} job ended before it could be measured: {progress}")
        await asyncio.sleep(0.2)  # polling a database row: there is no event to await here
    raise RuntimeError(f"the {kind} job reported no progress in {limit:.0f} s: {progress}")


async def jobs_status(dsn: str, ids: Sequence[int]) -> dict[str, int]:
    """How many of the jobs are in each status."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM jobs WHERE id = ANY($1::bigint[]) "
                                "GROUP BY status", list(ids))
    finally:
        await conn.close()
    return {str(r[0]): int(r[1]) for r in rows}


def _last_cpu(pid: int, tid: int) -> int:
    """The CPU a thread last ran on (field 39 of /proc/<pid>/task/<tid>/stat)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[36])


def _thread_cpu(pid: int, tid: int) -> float:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / load.CLK_TCK


@dataclass
class Placement:
    """Where a process's threads may run and were seen running, sampled over a window: the
    cores in their affinity masks, and the cores the busy ones (CPU time grown since the last
    sample) last ran on."""

    pid: int
    allowed: set[int] = field(default_factory=set)
    ran: dict[int, int] = field(default_factory=dict)  # core -> samples of a busy thread there
    threads: int = 0
    _cpu: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        tids = threads(self.pid)
        self.threads = max(self.threads, len(tids))
        for tid in tids:
            try:
                self.allowed |= os.sched_getaffinity(tid)
                used = _thread_cpu(self.pid, tid)
                if used > self._cpu.get(tid, used - 1e-9):  # ran since the last sample
                    core = _last_cpu(self.pid, tid)
                    self.ran[core] = self.ran.get(core, 0) + 1
                self._cpu[tid] = used
            except (OSError, IndexError, ValueError):
                continue  # the thread ended meanwhile

    def summary(self) -> str:
        ran = ", ".join(f"{core} ({n})" for core, n in sorted(self.ran.items()))
        return (f"its {self.threads} threads allowed on cores {sorted(self.allowed)}, busy ones "
                f"seen on {ran or 'none'}")


@dataclass
class Sampler:
    """The worker's VmRSS and its threads' placement, sampled every half second while a window
    runs."""

    pid: int
    rss: list[int] = field(default_factory=list)
    placement: Placement = field(init=False)  # replace it to start a window afresh

    def __post_init__(self) -> None:
        self.placement = Placement(self.pid)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.rss.append(load.rss_bytes(self.pid))
                self.placement.sample()
            except (OSError, RuntimeError):
                return
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


SPIN = "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True:\n    pass"
