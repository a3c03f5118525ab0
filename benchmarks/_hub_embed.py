"""A worker embedding a project while the hub serves edits, for ``benchmarks.hub`` (phase
``embedding``): generated 640 x 480 JPEGs, a real ``labelhub worker`` process started as
``labelhub serve`` starts its own (``server.cli._worker_preexec``), its scheduling switched
between variants on every thread, and readings of its job's progress (the ``jobs`` row) and
resident memory (/proc/PID/status VmRSS).

The edit -> peer latency at 200 watchers is measured idle (no job runs: the benchmark's server
starts no worker), then in windows while the worker embeds, in turns: as ``labelhub serve``
starts it, and with every thread under SCHED_IDLE. A window opens once the job has reported
progress and is only measured if the job will outlast it. Then two controls: a busy loop under
SCHED_IDLE in place of the worker (CPU time taken without memory traffic or database writes),
and idle again (the machine's drift over the phase)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import cv2
import numpy as np

from benchmarks import _hub_load as load
from client import RestClient

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


SPIN = "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True:\n    pass"


@dataclass
class Phase:
    row: Callable[[str, str, str, str], None]
    latency: Callable[[load.Fanout], str]
    quick: bool
    url: str
    admin: RestClient
    env: dict[str, str]
    db_url: str
    hub_pid: int


async def _upload(admin: RestClient, project: int, n: int) -> list[int]:
    t0, ids = time.perf_counter(), []
    for start in range(0, n, 250):  # no worker runs: the uploads queue one embed job
        files = await asyncio.to_thread(jpegs, start, min(250, n - start))
        ids += [item["id"] for item in await admin.upload_images(
            project, [(f"e{start + i}.jpg", data) for i, data in enumerate(files)])]
    print(f"  ({len(ids)} JPEGs generated and uploaded in {time.perf_counter() - t0:.0f} s)",
          flush=True)
    return ids


async def phase(ph: Phase) -> None:
    n = 600 if ph.quick else 5_000
    seconds = 3.0 if ph.quick else 10.0
    project = (await ph.admin.create_project("embedding"))["id"]
    ids = iter(await _upload(ph.admin, project, n))
    assert ph.admin.token is not None
    target = load.labelhub_target(ph.url.replace("http", "ws", 1), ph.admin.token, project)

    async def window(settle_first: bool = False) -> load.Fanout:
        return await load.fanout(target, ph.hub_pid, watchers=200, images=[next(ids)], rate=50,
                                 seconds=seconds, latency=True, settle_first=settle_first)

    idle = await window(settle_first=True)
    dsn = ph.db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    rows: list[tuple[str, load.Fanout]] = []
    worker = start_worker(ph.env)
    sampler, stop = Sampler(worker.pid), asyncio.Event()
    try:
        t0 = time.perf_counter()
        first = await wait_for_progress(dsn, project)
        print(f"  (first progress after {time.perf_counter() - t0:.1f} s: {first})", flush=True)
        sampling = asyncio.create_task(sampler.run(stop))
        # In turns (the machine's speed drifts within seconds), as far as the job lasts.
        variants = ["as `labelhub serve` starts it", "SCHED_IDLE"] * (1 if ph.quick else 2)
        for variant in variants:
            set_policy(worker.pid, idle=variant == "SCHED_IDLE")
            policy = policy_of(worker.pid)
            before, cpu0, t0 = (await job_progress(dsn, project), load.cpu_seconds(worker.pid),
                                time.perf_counter())
            busy = await window()
            after, cpu1, t1 = (await job_progress(dsn, project), load.cpu_seconds(worker.pid),
                               time.perf_counter())
            assert before is not None and after is not None
            done = after.done - before.done
            ran = "" if after.status == "running" else f" (THE JOB ENDED IN THE WINDOW: {after.status})"
            rows.append((f"edit -> peer latency, 200 watchers, 50 ops/s, while a worker embeds "
                         f"{n:,} JPEGs, worker {variant} ({policy}) (p50 / p99; in brackets, when "
                         f"the watcher read it). In the {t1 - t0:.0f} s window the job embedded "
                         f"{done} images ({done / (t1 - t0):.0f} /s), the worker used "
                         f"{(cpu1 - cpu0) / (t1 - t0):.0%} of a core and the server "
                         f"{busy.cpu / seconds:.0%} while editing{ran}", busy))
            if after.total - after.done < 1.3 * done:
                break  # the next window would outlast the job
        stop.set()
        await sampling
        print(f"  (after the windows: {await job_progress(dsn, project)})", flush=True)
    finally:
        await asyncio.to_thread(stop_worker, worker)
    spin = await asyncio.create_subprocess_exec(sys.executable, "-c", SPIN)
    try:
        cpu0, t0 = load.cpu_seconds(spin.pid), time.perf_counter()
        spun = await window()
        share = (load.cpu_seconds(spin.pid) - cpu0) / (time.perf_counter() - t0)
    finally:
        spin.kill()
        await spin.wait()
    rows.append((f"control: edit -> peer latency, 200 watchers, 50 ops/s, while a busy loop "
                 f"runs under SCHED_IDLE in place of the worker (it got {share:.0%} of a core)",
                 spun))
    again = await window(settle_first=True)
    for case, run in rows:
        ph.row(case, ph.latency(run), f"{ph.latency(idle)} (idle, same run, before the job; "
               f"after it: {ph.latency(again)})", "p99 <= 10 ms, as idle")
    if sampler.rss:
        ph.row(f"worker resident memory while embedding (VmRSS, max / last of {len(sampler.rss)} "
               "samples over the windows)",
               f"{max(sampler.rss) / 2**20:.0f} / {sampler.rss[-1] / 2**20:.0f} MB", "", "")
