"""Live editing while a worker trains and predicts, for ``benchmarks.hub`` (phase ``models``).

One project: 1,000 generated 640 x 480 JPEGs labeled by the photo they show (6 labels), 1,000
more to predict, and 100 synthetic 320-px scenes with exact boxes (benchmarks/_ai_scenes.py,
imported as people's boxes). A real ``labelhub worker``, started as ``labelhub serve`` starts
its own (benchmarks/_hub_worker.py), first embeds them all (not measured); the predict images'
vectors are then deleted, so predicting computes them as it would for new images.

The edit -> peer latency at 200 watchers is measured in rounds of windows (medians over the
rounds: one pause of the machine holding 5 of a window's 500 ops sets that window's p99 alone):
idle; training a classifier on the 1,000 labeled images (train jobs queued back to back, so the
worker trains for the whole window: cross-validation over three features, a learning curve, the
final fit); training a detector on the 100 boxed scenes (likewise); predicting the 1,000 images
with a classifier on the network's feature (their vectors deleted first, so the network runs on
each image) and with the detector (its feature maps on 2 x 2 tiles plus the whole image); and a
control with no server work, a busy loop at the worker's priority (nice 10) and on its cores in
its place. After each busy window the project's jobs are cancelled and awaited; a row says if
the work ended inside a window. Beside each: the worker's and PostgreSQL's share of a core, and where the
worker's threads were allowed and seen to run."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import cv2
import numpy as np

from benchmarks import _hub_load as load
from benchmarks._ai_scenes import LABELS, scenes
from benchmarks._hub_worker import (
    JobEnded,
    Phase,
    Placement,
    Sampler,
    cpu_delta,
    jobs_status,
    policy_of,
    postgres_cpu,
    start_worker,
    stop_worker,
    upload,
    wait_for_progress,
)

__all__ = ["phase"]

PHOTOS = 6  # benchmarks._hub_worker.jpegs: image i shows photo i % 6
ACTIVE = ("queued", "running")


@dataclass
class Window:
    """One measured window and what ran beside it."""

    what: str
    run: load.Fanout
    worker_share: float | None = None  # of a core, over the window
    postgres_share: float = 0.0
    placement: str = ""
    ended: str = ""


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(buf)


async def _boxed_scenes(ph: Phase, project: int, n: int) -> None:
    """Upload ``n`` scenes and import their boxes as people's."""
    made = await asyncio.to_thread(scenes, n, 7)
    await ph.admin.upload_images(project, [(f"s{i}.jpg", _jpeg(img))
                                           for i, (img, _) in enumerate(made)])
    await ph.admin.request("POST", f"/api/v1/projects/{project}/import",
                           params={"format": "json"}, json={
        "format": "labelhub", "version": 1, "labels": [{"name": n} for n in LABELS],
        "images": [{"name": f"s{i}.jpg", "objects": [
            {"id": f"h{k}", "type": "bbox", "label": name,
             "geometry": {"x": x, "y": y, "w": w, "h": h}}
            for k, (name, x, y, w, h) in enumerate(boxes)]} for i, (_, boxes) in enumerate(made)]})


async def _label(ph: Phase, project: int, ids: Sequence[int]) -> list[str]:
    names = [f"photo {k}" for k in range(PHOTOS)]
    for k, name in enumerate(names):
        await ph.admin.request("POST", f"/api/v1/projects/{project}/labels/apply", json={
            "op": {"kind": "add_label", "label": name}, "image_ids": list(ids[k::PHOTOS])})
    return names


async def _wait_jobs(ph: Phase, ids: Sequence[int], limit: float) -> dict[str, int]:
    """Poll until none of the jobs is queued or running (or ``limit`` s passed)."""
    deadline = time.perf_counter() + limit
    while True:
        status = await jobs_status(ph.dsn, ids)
        if not any(status.get(s) for s in ACTIVE) or time.perf_counter() > deadline:
            return status
        await asyncio.sleep(0.5)  # polling the jobs table: no event reaches this process


async def _cancel_active(ph: Phase, project: int) -> None:
    for job in await ph.admin.jobs(project, status=list(ACTIVE)):
        await ph.admin.cancel_job(project, int(job["id"]))


async def _forget_vectors(ph: Phase, ids: Sequence[int]) -> None:
    conn = await asyncpg.connect(ph.dsn)
    try:
        await conn.execute("DELETE FROM image_embeddings WHERE sha256 IN (SELECT sha256 FROM "
                           "images WHERE id = ANY($1::bigint[]))", list(ids))
    finally:
        await conn.close()


#: The windows of one round, in order (the worker's work in each: see the module docstring).
CASES = ("idle", "trains a classifier", "trains a detector", "predicts with a classifier",
         "predicts with the detector", "control: a busy loop at nice 10")
#: The control: a process that only computes, at the worker's priority and on its cores
#: (``python -c NICE_SPIN 1,2``).
NICE_SPIN = ("import os, sys\nos.nice(10)\nos.sched_setaffinity(0, map(int, sys.argv[1].split(',')))"
             "\nwhile True:\n    pass")


async def phase(ph: Phase) -> None:
    n = 120 if ph.quick else 1_000
    n_scenes = 24 if ph.quick else 100
    seconds = 3.0 if ph.quick else 10.0
    project = (await ph.admin.create_project("models"))["id"]
    edit_images: Iterator[int] = iter(await upload(ph.admin, project, 50_000, 8, "w"))
    labeled = await upload(ph.admin, project, 0, n, "t")
    to_predict = await upload(ph.admin, project, n, n, "p")
    names = await _label(ph, project, labeled)
    await _boxed_scenes(ph, project, n_scenes)
    assert ph.admin.token is not None
    target = load.labelhub_target(ph.url.replace("http", "ws", 1), ph.admin.token, project)
    watched = next(edit_images)
    windows: dict[str, list[Window]] = {case: [] for case in CASES}

    async def window(case: str, worker_pid: int | None = None,
                     sampler: Sampler | None = None) -> Window:
        pg0 = postgres_cpu()
        cpu0 = load.cpu_seconds(worker_pid) if worker_pid else 0.0
        if sampler is not None:
            sampler.placement = Placement(sampler.pid)
        t0 = time.perf_counter()
        run = await load.fanout(target, ph.hub_pid, watchers=200, images=[watched],
                                rate=50, seconds=seconds, latency=True,
                                settle_first=worker_pid is None)
        took = time.perf_counter() - t0
        out = Window(case, run, postgres_share=cpu_delta(pg0, postgres_cpu()) / took)
        if worker_pid:
            out.worker_share = (load.cpu_seconds(worker_pid) - cpu0) / took
        if sampler is not None:
            out.placement = f"{policy_of(sampler.pid)}; {sampler.placement.summary()}"
        windows[case].append(out)
        return out

    worker = start_worker(ph.env)
    sampler, stop = Sampler(worker.pid), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    try:
        t0 = time.perf_counter()
        embed = [int(j["id"]) for j in await ph.admin.jobs(project, kind="embed")]
        await _wait_jobs(ph, embed, 3600)  # a niced worker on a busy machine is slow
        print(f"  (the uploads embedded in {time.perf_counter() - t0:.0f} s)", flush=True)
        lite = int((await ph.admin.train_model(project, "photos-lite0", labels=names,
                                               features=["lite0@1"]))["job"]["id"])
        await _wait_jobs(ph, [lite], 900)  # the model the classifier windows predict with
        for _ in range(1 if ph.quick else 3):
            await window("idle")
            await _round(ph, project, names, to_predict, window, worker.pid, sampler)
            cores = ",".join(map(str, sorted(os.sched_getaffinity(worker.pid))))
            spin = await asyncio.create_subprocess_exec(sys.executable, "-c", NICE_SPIN, cores)
            try:
                await window(CASES[-1], spin.pid)
            finally:
                spin.kill()
                await spin.wait()
    finally:
        stop.set()
        await sampling
        await _cancel_active(ph, project)
        await asyncio.to_thread(stop_worker, worker)
    _rows(ph, windows, n)
    if sampler.rss:
        ph.row(f"worker resident memory while training and predicting (VmRSS, max / last of "
               f"{len(sampler.rss)} samples)",
               f"{max(sampler.rss) / 2**20:.0f} / {sampler.rss[-1] / 2**20:.0f} MB", "", "")


async def _busy(ph: Phase, project: int, jobs: list[int], kind: str, done: int, case: str,
                window: Any, pid: int, sampler: Sampler) -> None:
    """One window while one of ``jobs`` runs (the rest queued behind it, so the worker stays
    busy), then every job of the project cancelled and ended. The first job that has not ended
    by the time it is looked at is the one waited for: on a quiet machine a classifier can train
    while the rest are still being queued."""
    for job in jobs:
        try:
            await wait_for_progress(ph.dsn, project, kind, job, limit=900, done=done)
            break
        except JobEnded:
            continue
    else:
        raise RuntimeError(f"all {len(jobs)} {kind} jobs ended before one could be measured")
    w = await window(case, pid, sampler)
    w.ended = _ended(await jobs_status(ph.dsn, jobs))
    await _cancel_active(ph, project)
    await _wait_jobs(ph, jobs, 300)


async def _round(ph: Phase, project: int, names: list[str], to_predict: list[int],
                 window: Any, pid: int, sampler: Sampler) -> None:
    """The four busy windows of one round, each while its jobs run; the jobs of one end before
    the next starts. The predicted images' vectors are deleted first each time, so the
    classifier's prediction computes them as it would for new images."""
    # Enough jobs that the work outlasts the window: a classifier trains in ~1.5 s here (six
    # ended inside a 10-s window), a detector in ~5 s.
    trains = [int((await ph.admin.train_model(project, "photos", labels=names))["job"]["id"])
              for _ in range(2 if ph.quick else 16)]
    await _busy(ph, project, trains, "train", 0, CASES[1], window, pid, sampler)
    det = [int((await ph.admin.train_model(project, "shapes", task="detection",
                                           labels=list(LABELS)))["job"]["id"])
           for _ in range(2 if ph.quick else 4)]
    await _busy(ph, project, det, "train", 0, CASES[2], window, pid, sampler)
    for model, case in (("photos-lite0", CASES[3]), ("shapes", CASES[4])):
        await _forget_vectors(ph, to_predict)
        job = int((await ph.admin.predict(project, model, to_predict))["job"]["id"])
        await _busy(ph, project, [job], "predict", 1, case, window, pid, sampler)


def _ended(status: dict[str, int]) -> str:
    busy = sum(status.get(s, 0) for s in ACTIVE)
    return "" if busy else f" (THE WORK ENDED IN THE WINDOW: {status})"


def _summary(runs: list[Window]) -> str:
    """Median p50 / p99 over the rounds, and each round's p99."""
    p50 = statistics.median(load.percentile(w.run.latencies_ms, 50) for w in runs)
    p99s = [load.percentile(w.run.latencies_ms, 99) for w in runs]
    return (f"{p50:.2f} / {statistics.median(p99s):.2f} ms [p99 by round: "
            f"{', '.join(f'{v:.1f}' for v in p99s)}]")


def _rows(ph: Phase, windows: dict[str, list[Window]], n: int) -> None:
    rounds = len(windows["idle"])
    base = (f"idle {_summary(windows['idle'])}; control, no server work: a busy loop at nice "
            f"10 on the worker's cores in its place {_summary(windows[CASES[-1]])} (same rounds)")
    what = {CASES[1]: f"trains a classifier on {n:,} labeled images, features stored",
            CASES[2]: "trains a detector on the boxed scenes",
            CASES[3]: f"predicts {n:,} images with a classifier on lite0@1 (their vectors "
                      "computed first)",
            CASES[4]: f"predicts {n:,} 640 x 480 images with the detector (maps of 5 views "
                      "each)"}
    for case in CASES[1:-1]:
        runs = windows[case]
        share = statistics.median(w.worker_share or 0.0 for w in runs)
        pg = statistics.median(w.postgres_share for w in runs)
        ended = "".join(w.ended for w in runs)
        ph.row(f"edit -> peer latency, 200 watchers, 50 ops/s, while a worker {what[case]} "
               f"(median p50 / p99 of {rounds} round(s) of windows). The worker used {share:.0%} "
               f"of a core ({runs[-1].placement}), PostgreSQL {pg:.0%} (medians){ended}",
               _summary(runs), base, "p99 <= 10 ms, as idle")
