"""Live editing while a worker trains and predicts, for ``benchmarks.hub`` (phase ``models``).

One project: 1,000 generated 640 x 480 JPEGs labeled by the photo they show (6 labels), 1,000
more to predict, and 100 synthetic 320-px scenes with exact boxes (benchmarks/_ai_scenes.py,
imported as people's boxes). A real ``labelhub worker``, started as ``labelhub serve`` starts
its own (benchmarks/_hub_worker.py), first embeds them all (not measured); the predict images'
vectors are then deleted, so predicting computes them as it would for new images.

The edit -> peer latency at 200 watchers is measured idle, then in one window during each of:
training a classifier on the 1,000 labeled images (train jobs queued back to back, so the
worker trains for the whole window: cross-validation over three features, a learning curve, the
final fit), training a detector on the 100 boxed scenes (likewise), predicting the 1,000 images
with a classifier on the network's feature (the network runs on each image) and with the
detector (its feature maps on 2 x 2 tiles plus the whole image), then idle again. A window opens
once its job runs; a row says if the work ended inside it. Beside each: the worker's and
PostgreSQL's share of a core, and where the worker's threads were allowed and seen to run."""

from __future__ import annotations

import asyncio
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
    windows: list[Window] = []

    async def window(what: str, worker_pid: int | None = None,
                     sampler: Sampler | None = None) -> Window:
        pg0 = postgres_cpu()
        cpu0 = load.cpu_seconds(worker_pid) if worker_pid else 0.0
        if sampler is not None:
            sampler.placement = Placement(sampler.pid)
        t0 = time.perf_counter()
        run = await load.fanout(target, ph.hub_pid, watchers=200, images=[next(edit_images)],
                                rate=50, seconds=seconds, latency=True,
                                settle_first=worker_pid is None)
        took = time.perf_counter() - t0
        out = Window(what, run, postgres_share=cpu_delta(pg0, postgres_cpu()) / took)
        if worker_pid:
            out.worker_share = (load.cpu_seconds(worker_pid) - cpu0) / took
        if sampler is not None:
            out.placement = f"{policy_of(sampler.pid)}; {sampler.placement.summary()}"
        windows.append(out)
        return out

    idle = await window("idle, before")
    worker = start_worker(ph.env)
    sampler, stop = Sampler(worker.pid), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    try:
        t0 = time.perf_counter()
        embed = [int(j["id"]) for j in await ph.admin.jobs(project, kind="embed")]
        await _wait_jobs(ph, embed, 3600)  # a niced worker on a busy machine is slow
        print(f"  (the uploads embedded in {time.perf_counter() - t0:.0f} s)", flush=True)
        await _forget_vectors(ph, to_predict)
        await _measured(ph, project, names, to_predict, window, worker.pid, sampler)
    finally:
        stop.set()
        await sampling
        await _cancel_active(ph, project)
        await asyncio.to_thread(stop_worker, worker)
    again = await window("idle, after")
    _rows(ph, windows, idle, again)
    if sampler.rss:
        ph.row(f"worker resident memory while training and predicting (VmRSS, max / last of "
               f"{len(sampler.rss)} samples)",
               f"{max(sampler.rss) / 2**20:.0f} / {sampler.rss[-1] / 2**20:.0f} MB", "", "")


async def _measured(ph: Phase, project: int, names: list[str], to_predict: list[int],
                    window: Any, pid: int, sampler: Sampler) -> None:
    """The four busy windows, each once its jobs run; the jobs of one end before the next."""
    n = len(to_predict)
    rounds = 2 if ph.quick else 4  # train jobs queued back to back: the window sees training
    jobs = [int((await ph.admin.train_model(project, "photos", labels=names))["job"]["id"])
            for _ in range(rounds)]
    jobs.append(int((await ph.admin.train_model(project, "photos-lite0", labels=names,
                                                features=["lite0@1"]))["job"]["id"]))
    await wait_for_progress(ph.dsn, project, "train", jobs[0], limit=900, done=0)
    w = await window(f"trains a classifier on {n:,} labeled images, features stored "
                     f"({rounds} train jobs queued)", pid, sampler)
    w.ended = _ended(await jobs_status(ph.dsn, jobs[:rounds]))
    await _wait_jobs(ph, jobs, 600)
    det = [int((await ph.admin.train_model(project, "shapes", task="detection",
                                           labels=list(LABELS)))["job"]["id"])
           for _ in range(2)]
    await wait_for_progress(ph.dsn, project, "train", det[0], limit=900, done=0)
    w = await window("trains a detector on the boxed scenes (2 train jobs queued)", pid, sampler)
    w.ended = _ended(await jobs_status(ph.dsn, det))
    await _wait_jobs(ph, det, 600)
    for model, what in (("photos-lite0", f"predicts {n:,} images with a classifier on lite0@1 "
                                         "(their vectors computed first)"),
                        ("shapes", f"predicts {n:,} 640 x 480 images with the detector (maps "
                                   "of 5 views each)")):
        job = int((await ph.admin.predict(project, model, to_predict))["job"]["id"])
        await wait_for_progress(ph.dsn, project, "predict", job, limit=900, done=1)
        w = await window(what, pid, sampler)
        w.ended = _ended(await jobs_status(ph.dsn, [job]))
        await _cancel_active(ph, project)  # the rest of a long prediction is not needed
        await _wait_jobs(ph, [job], 60)


def _ended(status: dict[str, int]) -> str:
    busy = sum(status.get(s, 0) for s in ACTIVE)
    return "" if busy else f" (THE WORK ENDED IN THE WINDOW: {status})"


def _rows(ph: Phase, windows: list[Window], idle: Window, again: Window) -> None:
    base = (f"{ph.latency(idle.run)} (idle, same run, before; after: {ph.latency(again.run)}); "
            f"PostgreSQL {idle.postgres_share:.0%} / {again.postgres_share:.0%} of a core idle")
    for w in windows:
        if w.worker_share is None:
            continue
        ph.row(f"edit -> peer latency, 200 watchers, 50 ops/s, while a worker {w.what} (p50 / "
               f"p99; in brackets, when the watcher read it). The worker used "
               f"{w.worker_share:.0%} of a core ({w.placement}), PostgreSQL "
               f"{w.postgres_share:.0%}, the server {w.run.cpu / max(w.run.ops / 50, 1e-9):.0%}"
               f"{w.ended}", ph.latency(w.run), base, "p99 <= 10 ms, as idle")
