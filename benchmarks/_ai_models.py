"""Models and predictions, for ``benchmarks.ai``: training on 1,000 labeled images whose features
are stored, and predicting 1,000 images whose features are not (embedding included).

Timed end to end through the real routes and a real worker in process, on SQLite (a temporary
file): from ``POST /models`` (or ``POST /predictions``) to the job's end, heard through the job
feed. Images: scikit-learn's handwritten digits, upscaled to 64 x 64 PNGs (1,000 labeled with
their digit and embedded beforehand; 1,000 others, mirrored so their content is new, to
predict: their vectors are deleted before each predict run, so it computes them). Baselines,
measured in the same run with no database, jobs or worker: one scikit-learn
``LogisticRegression`` fit on the same 1,000 vectors of the chosen feature (training does
cross-validation, metrics and a learning curve on top), and computing the features of the
1,000 decoded images plus the head (prediction adds reading files, storing rows). Two predict
rows: with the model trained on the chosen feature, and with one trained on the network's
feature alone (so the network runs on every image; the worker's threads run at lowered
priority, the baseline's do not), each with the process's CPU time beside the wall time (on a
shared machine the niced worker waits for the CPU). ``LABELHUB_BENCH_QUICK=1``: 200 images.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import delete

from benchmarks._ai_search import EMAIL, PASSWORD, signed_in
from server.ai.features import Extractor
from server.ai.heads import assemble
from server.app import create_app
from server.cli import _alembic_upgrade
from server.db import transaction
from server.jobs.worker import Worker
from server.models import ImageEmbedding
from server.settings import Settings

__all__ = ["model_rows"]

N = 200 if os.environ.get("LABELHUB_BENCH_QUICK") else 1000  # images trained on, and predicted


def _digits() -> tuple[list[np.ndarray], np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = [cv2.resize((im * 255 / 16).astype(np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)
              for im in d.images]
    return images, np.asarray(d.target)


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return bytes(buf)


async def _wait(app: Any, job_id: int) -> dict[str, Any]:
    state = await app.state.jobs.wait(job_id, lambda s: s.status in ("done", "failed", "cancelled"))
    assert state.status == "done", state
    return state.result or {}


async def _measure(data_dir: Path) -> tuple[dict[str, float], str]:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{data_dir / 'b.db'}", data_dir=data_dir,
                        secret_key="bench", admin_email=EMAIL, admin_password=PASSWORD,
                        password_time_cost=1, password_memory_kib=1024, workers=0)
    await asyncio.to_thread(_alembic_upgrade, settings)
    images, target = _digits()
    train_imgs, train_y = images[:N], target[:N]
    mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    predict_imgs = (images[N:] + mirrored)[:N]
    app = create_app(settings)
    out: dict[str, float] = {}
    async with signed_in(app, request_timeout=600) as c:
        pid = (await c.post("/api/v1/projects", json={"name": "bench"})).json()["id"]
        ids: list[int] = []
        for start in range(0, N, 200):
            files = [("files", (f"t{start + i}.png", _png(im), "image/png"))
                     for i, im in enumerate(train_imgs[start : start + 200])]
            resp = await c.post(f"/api/v1/projects/{pid}/images", files=files)
            ids += [r["image"]["id"] for r in resp.json()["results"]]
        for digit in range(10):
            chosen = [i for i, t in zip(ids, train_y, strict=True) if t == digit]
            await c.post(f"/api/v1/projects/{pid}/labels/apply", json={
                "op": {"kind": "add_label", "label": f"digit {digit}"}, "image_ids": chosen})
        worker = Worker(settings, app.state.sessions)
        task = asyncio.create_task(worker.run())
        try:
            jobs = (await c.get(f"/api/v1/projects/{pid}/jobs?kind=embed")).json()["jobs"]
            await _wait(app, jobs[0]["id"])  # the upload's embed job: not timed
            t0 = time.perf_counter()
            resp = await c.post(f"/api/v1/projects/{pid}/models", json={"name": "digits"})
            result = await _wait(app, resp.json()["job"]["id"])
            out["train_s"] = time.perf_counter() - t0
            out["accuracy"] = float(result["accuracy"])
            feature = str(result["feature"])
            new: list[int] = []
            shas: list[str] = []
            for start in range(0, N, 200):
                files = [("files", (f"p{start + i}.png", _png(im), "image/png"))
                         for i, im in enumerate(predict_imgs[start : start + 200])]
                resp = await c.post(f"/api/v1/projects/{pid}/images", files=files)
                new += [r["image"]["id"] for r in resp.json()["results"]]
                shas += [r["image"]["sha256"] for r in resp.json()["results"]]
            # The uploads' embed job runs (the worker is up); let it end, then forget the
            # new images' vectors, so that predicting has to compute them.
            for job in (await c.get(f"/api/v1/projects/{pid}/jobs?status=queued,running")
                        ).json()["jobs"]:
                await _wait(app, job["id"])
            # A second model on the network's feature alone, so that predicting with it
            # runs the network (the first may have chosen HOG only).
            resp = await c.post(f"/api/v1/projects/{pid}/models",
                                json={"name": "lite0", "features": ["lite0@1"]})
            await _wait(app, resp.json()["job"]["id"])
            for name, key in (("digits", "predict_s"), ("lite0", "predict_lite0_s")):
                async with transaction(app.state.sessions) as session:
                    await session.execute(delete(ImageEmbedding).where(
                        ImageEmbedding.sha256.in_(shas)))
                t0, c0 = time.perf_counter(), time.process_time()
                resp = await c.post(f"/api/v1/projects/{pid}/predictions",
                                    json={"model": name, "images": new})
                result = await _wait(app, resp.json()["job"]["id"])
                out[key] = time.perf_counter() - t0
                out[f"{key}_cpu"] = time.process_time() - c0
                assert result["predicted"] == N, result
        finally:
            worker.stop()
            await task
    # Baselines: the bare computations, in memory.
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    ext = Extractor(data_dir / "models", threads=settings.ai_threads, nice=0)
    rgb = [cv2.cvtColor(im, cv2.COLOR_GRAY2RGB) for im in train_imgs]
    keys = feature.split("+")
    x = assemble(ext.compute(rgb, keys), keys)
    with threadpool_limits(1):
        t0 = time.perf_counter()
        LogisticRegression(C=10.0, max_iter=300, tol=1e-3).fit(x, train_y)
        out["train_base_s"] = time.perf_counter() - t0
    rgb = [cv2.cvtColor(im, cv2.COLOR_GRAY2RGB) for im in predict_imgs]
    for wanted, name in ((keys, "predict_base_s"), (["lite0@1"], "predict_lite0_base_s")):
        t0, c0 = time.perf_counter(), time.process_time()
        x = assemble(ext.compute(rgb, wanted), wanted)
        (x @ np.zeros((x.shape[1], 10), np.float32)).argmax(axis=1)  # the head: one product
        out[name] = time.perf_counter() - t0
        out[f"{name}_cpu"] = time.process_time() - c0
    return out, feature


def model_rows() -> list[tuple[str, str, str, str]]:
    """(what, figure, baseline, goal) rows."""
    with tempfile.TemporaryDirectory() as tmp:
        r, feature = asyncio.run(_measure(Path(tmp)))
    return [
        (f"train a classifier on {N:,} labeled images, features stored (POST /models to job "
         f"done; chose {feature}, cross-validated accuracy {r['accuracy']:.2f})",
         f"{r['train_s']:.1f} s", f"one LogisticRegression fit: {r['train_base_s']:.1f} s", "< 30 s"),
        (f"predict {N:,} images with it, embedding included ({feature}; POST /predictions to "
         "job done; in brackets the process's CPU time)",
         f"{r['predict_s']:.1f} s ({r['predict_s_cpu']:.1f} s CPU)",
         f"the features + head in memory: {r['predict_base_s']:.1f} s "
         f"({r['predict_base_s_cpu']:.1f} s CPU)", "< 30 s"),
        (f"predict {N:,} images with a model on lite0@1 (runs the network on each image)",
         f"{r['predict_lite0_s']:.1f} s ({r['predict_lite0_s_cpu']:.1f} s CPU)",
         f"the features + head in memory: {r['predict_lite0_base_s']:.1f} s "
         f"({r['predict_lite0_base_s_cpu']:.1f} s CPU)", "< 30 s"),
    ]
