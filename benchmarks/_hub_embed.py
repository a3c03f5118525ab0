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
import sys
import time

from benchmarks import _hub_load as load
from benchmarks._hub_worker import (
    SPIN,
    Phase,
    Sampler,
    job_progress,
    policy_of,
    set_policy,
    start_worker,
    stop_worker,
    upload,
    wait_for_progress,
)

__all__ = ["phase"]


async def phase(ph: Phase) -> None:
    n = 600 if ph.quick else 5_000
    seconds = 3.0 if ph.quick else 10.0
    project = (await ph.admin.create_project("embedding"))["id"]
    ids = iter(await upload(ph.admin, project, 0, n))
    assert ph.admin.token is not None
    target = load.labelhub_target(ph.url.replace("http", "ws", 1), ph.admin.token, project)

    async def window(settle_first: bool = False) -> load.Fanout:
        return await load.fanout(target, ph.hub_pid, watchers=200, images=[next(ids)], rate=50,
                                 seconds=seconds, latency=True, settle_first=settle_first)

    idle = await window(settle_first=True)
    dsn = ph.dsn
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
