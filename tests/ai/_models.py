"""Helpers for the models and predictions tests: a small digits project, jobs run to their end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette

from server.protocol import JobState
from tests.ai._digits import cancel_queued, digits, upload
from tests.ai.test_suggestions import label_each
from tests.conftest import Api, make_project
from tests.jobs.conftest import ended, running_worker, wait_job

PER_CLASS = 8  # digits uploaded per class
LABELED = 5  # of which people label this many


@dataclass
class SmallDigits:
    pid: int
    ids: list[int]
    target: np.ndarray
    labeled: dict[int, str]  # image id -> label people gave

    @property
    def unlabeled(self) -> list[int]:
        return [i for i in self.ids if i not in self.labeled]


async def small_digits(admin: Api, classes: int = 10, labeled: int = LABELED) -> SmallDigits:
    """80 digits uploaded (not embedded: the jobs under test embed what they need), 5 per class
    labeled ``digit N`` by a person."""
    pid = await make_project(admin, "Digits")
    images, target = digits(per_class=PER_CLASS)
    keep = target < classes
    images = [im for im, k in zip(images, keep, strict=True) if k]
    target = target[keep]
    items = await upload(admin, pid, [(f"d{i:03d}.png", d) for i, d in enumerate(images)])
    await cancel_queued(admin, pid)
    ids = [int(item["id"]) for item in items]
    seen: dict[int, int] = {}
    chosen: dict[int, str] = {}
    for image_id, t in zip(ids, target, strict=True):
        if seen.get(int(t), 0) < labeled:
            chosen[image_id] = f"digit {t}"
            seen[int(t)] = seen.get(int(t), 0) + 1
    await label_each(admin, pid, chosen)
    return SmallDigits(pid, ids, target, chosen)


async def run(app: Starlette, job: dict[str, Any]) -> JobState:
    """Run a queued job to its end with a worker in this process."""
    async with running_worker(app, kinds=["train", "predict", "embed"]):
        return await wait_job(app, int(job["id"]), ended, within=180)


async def train(app: Starlette, api: Api, pid: int, **body: Any) -> JobState:
    body.setdefault("features", ["hog@1"])
    resp = await api.client.post(f"/api/v1/projects/{pid}/models", json=body)
    assert resp.status_code == 202, resp.text
    return await run(app, resp.json()["job"])


async def predict(app: Starlette, api: Api, pid: int, **body: Any) -> JobState:
    resp = await api.client.post(f"/api/v1/projects/{pid}/predictions", json=body)
    assert resp.status_code == 202, resp.text
    return await run(app, resp.json()["job"])
