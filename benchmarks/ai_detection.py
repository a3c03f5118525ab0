"""Box detection: ``python -m benchmarks ai_detection`` (``quality`` or ``speed`` for one table).

*Quality*: mAP@0.5 on 100 held-out synthetic scenes with exact boxes (shapes pasted onto
scikit-image's photos, ``benchmarks/_ai_scenes.py``) against the number of training images
(10 / 25 / 50 / 100), mean over 2 seeds, each a single fit as the train job's final one (its
cross-validation, which costs 7 more fits, is left out here: the speed table shows it).
Two settings: the notes' (320 px, shapes of 48-100 px), and small shapes (24-50 px) in 640-px
images, with and without the tiles large images get. *Speed*: end to end through the real
routes and a worker in process on SQLite (a temporary file): training a detector on 100 boxed
images (``POST /models`` to job done) and predicting 1,000 images (``POST /predictions`` to job
done, the network's maps computed for each); baselines in the same run with no database, jobs
or worker: the network's maps of the same images plus one fit, and decode + maps + detection.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks._ai_scenes import LABELS, Box, scenes
from benchmarks._ai_search import EMAIL, PASSWORD, signed_in
from server.ai import detection
from server.ai import detector_training as dt
from server.ai.features import decode_image
from server.ai.model import Network
from server.app import create_app
from server.cli import _alembic_upgrade
from server.jobs.worker import Worker
from server.settings import Settings

SIZES = (10, 25, 50, 100)
SEEDS = 2
TEST = 100
TRAIN_N = 100
PREDICT_N = 200 if os.environ.get("LABELHUB_BENCH_QUICK") else 1000


def _map(det: detection.Detector, maps: Sequence[list[dt.ViewMaps]], truth: Sequence[list[Box]]
         ) -> float:
    found = [dt.detect_image(det, m, dt.EVAL_FLOOR) for m in maps]
    counts = dt.Counts([dt.Boxed(0, 0, [], b) for b in truth], range(len(truth)), LABELS).by_label
    ap = dt._map(dt._matched(found, truth), counts)
    return float(np.mean(list(ap.values())))


def _quality_row(net: Network, name: str, size: int, shapes: tuple[int, int],
                 tiles: bool = True) -> list[str]:
    saved = detection.TILE_ABOVE
    if not tiles:
        detection.TILE_ABOVE = 10**9  # every image one view
    try:
        test = scenes(TEST, seed=1000, size=size, shapes=shapes)
        test_maps = dt.image_maps(net, [img for img, _ in test])
        held: dict[int, list[float]] = {n: [] for n in SIZES}
        index = {n: j for j, n in enumerate(LABELS)}
        for seed in range(SEEDS):
            train = scenes(max(SIZES), seed=seed, size=size, shapes=shapes)
            maps = dt.image_maps(net, [img for img, _ in train])
            boxed = [dt.Boxed(size, size, m, b) for m, (_, b) in zip(maps, train, strict=True)]
            rng = np.random.default_rng(seed)
            samples = [dt._samples(ex, index, rng) for ex in boxed]
            for n in SIZES:
                if dt.shortfalls(dt.Counts(boxed, range(n), LABELS).by_label, n):
                    continue  # too few boxes of a label in this draw: training would refuse
                with threadpool_limits(1):
                    det = dt._fit(samples, list(range(n)), LABELS, rng)
                held[n].append(_map(det, test_maps, [b for _, b in test]))
    finally:
        detection.TILE_ABOVE = saved
    return [name, *(f"{np.mean(held[n]):.2f}" if held[n] else "-" for n in SIZES)]


def quality_table(net: Network) -> None:
    print(f"\nDetection mAP@0.5 on {TEST} held-out scenes (mean of {SEEDS} seeds), by training "
          "images\n")
    print("| scenes | " + " | ".join(f"n = {n}" for n in SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    for row in (_quality_row(net, "320 px, shapes 48-100 px (the notes' setting)", 320, (48, 100)),
                _quality_row(net, "640 px, shapes 24-50 px, with tiles", 640, (24, 50)),
                _quality_row(net, "640 px, shapes 24-50 px, whole image only", 640, (24, 50),
                             tiles=False)):
        print("| " + " | ".join(row) + " |", flush=True)


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(buf)


async def _wait(app: Any, job_id: int) -> dict[str, Any]:
    state = await app.state.jobs.wait(job_id, lambda s: s.status in ("done", "failed", "cancelled"))
    assert state.status == "done", state
    return state.result or {}


async def _upload(c: Any, pid: int, prefix: str, blobs: list[bytes]) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(blobs), 200):
        files = [("files", (f"{prefix}{start + i}.jpg", b, "image/jpeg"))
                 for i, b in enumerate(blobs[start : start + 200])]
        resp = await c.post(f"/api/v1/projects/{pid}/images", files=files)
        ids += [r["image"]["id"] for r in resp.json()["results"]]
    return ids


async def _measure(data_dir: Path) -> dict[str, float]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{data_dir / 'b.db'}", data_dir=data_dir,
                        secret_key="bench", admin_email=EMAIL, admin_password=PASSWORD,
                        password_time_cost=1, password_memory_kib=1024, workers=0)
    await asyncio.to_thread(_alembic_upgrade, settings)
    train = scenes(TRAIN_N, seed=7)
    other = scenes(PREDICT_N, seed=8)
    train_jpegs, other_jpegs = [_jpeg(i) for i, _ in train], [_jpeg(i) for i, _ in other]
    app = create_app(settings)
    out: dict[str, float] = {}
    async with signed_in(app, request_timeout=600) as c:
        pid = (await c.post("/api/v1/projects", json={"name": "bench"})).json()["id"]
        await _upload(c, pid, "t", train_jpegs)
        new = await _upload(c, pid, "p", other_jpegs)
        for job in (await c.get(f"/api/v1/projects/{pid}/jobs?status=queued")).json()["jobs"]:
            await c.post(f"/api/v1/projects/{pid}/jobs/{job['id']}/cancel")  # no embedding
        resp = await c.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json={
            "format": "labelhub", "version": 1, "labels": [{"name": n} for n in LABELS],
            "images": [{"name": f"t{i}.jpg", "objects": [
                {"id": f"h{k}", "type": "bbox", "label": n, "geometry": {"x": x, "y": y, "w": w,
                                                                       "h": h}}
                for k, (n, x, y, w, h) in enumerate(b)]} for i, (_, b) in enumerate(train)]})
        assert resp.status_code == 200, resp.text
        worker = Worker(settings, app.state.sessions)
        task = asyncio.create_task(worker.run())
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            resp = await c.post(f"/api/v1/projects/{pid}/models",
                                json={"task": "detection", "name": "shapes"})
            result = await _wait(app, resp.json()["job"]["id"])
            out["train_s"], out["train_cpu"] = time.perf_counter() - t0, time.process_time() - c0
            out["map50"] = float(result["map50"])
            t0, c0 = time.perf_counter(), time.process_time()
            resp = await c.post(f"/api/v1/projects/{pid}/predictions",
                                json={"model": "shapes", "images": new})
            result = await _wait(app, resp.json()["job"]["id"])
            out["predict_s"] = time.perf_counter() - t0
            out["predict_cpu"] = time.process_time() - c0
            assert result["predicted"] == PREDICT_N, result
        finally:
            worker.stop()
            await task
    # Baselines: the bare computations, in memory (the worker's threads, nice 0).
    net = Network.load(data_dir / "models", threads=settings.ai_threads, nice=0)
    t0 = time.perf_counter()
    maps = dt.image_maps(net, [decode_image(b) for b in train_jpegs])
    out["maps_s"] = time.perf_counter() - t0
    boxed = [dt.Boxed(320, 320, m, b) for m, (_, b) in zip(maps, train, strict=True)]
    rng = np.random.default_rng(0)
    samples = [dt._samples(ex, {n: j for j, n in enumerate(LABELS)}, rng) for ex in boxed]
    with threadpool_limits(1):
        t0 = time.perf_counter()
        dt._fit(samples, list(range(TRAIN_N)), LABELS, rng)
        out["fit_s"] = time.perf_counter() - t0
    det = dt.train(boxed, list(LABELS))[0]
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, PREDICT_N, 16):
        images = [decode_image(b) for b in other_jpegs[start : start + 16]]
        with threadpool_limits(1):
            for m in dt.image_maps(net, images, dtype=np.float32):  # as the predict job
                dt.detect_image(det, m, 0.1)
    out["predict_base_s"] = time.perf_counter() - t0
    out["predict_base_cpu"] = time.process_time() - c0
    return out


def speed_table() -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(_measure(Path(tmp)))
    print(f"\nDetector training and prediction (SQLite, a worker in process, 320-px JPEG scenes; "
          f"load average before: {load})\n")
    print("| what | figure | CPU time (this process) | baseline (same run) | goal |")
    print("|---|---:|---:|---|---|")
    rows = [
        (f"train a detector on {TRAIN_N} boxed images (POST /models to job done; "
         f"cross-validated mAP@0.5 {r['map50']:.2f})", f"{r['train_s']:.1f} s",
         f"{r['train_cpu']:.1f} s",
         f"the images' maps {r['maps_s']:.1f} s + one fit {r['fit_s']:.1f} s", "< 60 s"),
        (f"predict {PREDICT_N:,} images with it, maps included (POST /predictions to job done)",
         f"{r['predict_s']:.1f} s", f"{r['predict_cpu']:.1f} s",
         f"decode + maps + boxes in memory: {r['predict_base_s']:.1f} s "
         f"({r['predict_base_cpu']:.1f} s CPU)", "< 30 s"),
    ]
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


def main(parts: tuple[str, ...] = ("quality", "speed")) -> None:
    if "quality" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            quality_table(Network.load(Path(tmp), threads=Settings().ai_threads, nice=0))
    if "speed" in parts:
        speed_table()


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("quality", "speed"))
