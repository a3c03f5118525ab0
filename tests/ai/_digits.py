"""Helpers for the embeddings/similarity/suggestions tests: scikit-learn's handwritten digits
uploaded as PNGs, embed jobs run by a real worker in this process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_digits
from starlette.applications import Starlette

from server.ai.features import HOG
from server.protocol import JobState
from tests.conftest import Api, make_project
from tests.jobs.conftest import ended, queue_job, running_worker, wait_job

PER_CLASS = 40  # digits per class uploaded: 400 images


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return bytes(buf)


def digits(per_class: int = PER_CLASS) -> tuple[list[bytes], np.ndarray]:
    """The first ``per_class`` 8x8 digits of each class as PNGs, and their classes."""
    data = load_digits()
    picked = np.concatenate([np.flatnonzero(data.target == c)[:per_class] for c in range(10)])
    images = [png((data.images[i] * (255 / 16)).astype(np.uint8)) for i in picked]
    return images, data.target[picked]


async def upload(api: Api, pid: int, items: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(items), 200):
        files = [("files", (n, d, "image/png")) for n, d in items[start : start + 200]]
        resp = await api.client.post(f"/api/v1/projects/{pid}/images", files=files)
        assert resp.status_code == 201, resp.text
        out += [r["image"] for r in resp.json()["results"]]
    return out


async def cancel_queued(api: Api, pid: int) -> None:
    """Cancel the embed jobs uploads queued (tests run their own, HOG only, to stay fast)."""
    jobs = (await api.client.get(f"/api/v1/projects/{pid}/jobs?status=queued")).json()["jobs"]
    for job in jobs:
        resp = await api.client.post(f"/api/v1/projects/{pid}/jobs/{job['id']}/cancel")
        assert resp.status_code == 200, resp.text


async def embed(app: Starlette, pid: int, features: list[str] | None = None) -> JobState:
    """Queue an embed job and run it to its end with a worker in this process."""
    params: dict[str, Any] = {} if features is None else {"features": features}
    job_id = await queue_job(app, "embed", pid, params)
    async with running_worker(app, kinds=["embed"]):
        return await wait_job(app, job_id, ended, within=120)


@dataclass
class Digits:
    pid: int
    ids: list[int]  # image ids, in upload order
    target: np.ndarray  # their digit


async def digits_project(app: Starlette, admin: Api) -> Digits:
    """A project of 400 digits (40 per class), embedded with HOG (fast) by a real worker."""
    pid = await make_project(admin, "Digits")
    images, target = digits()
    items = await upload(admin, pid, [(f"d{i:04d}_{t}.png", d)
                                      for i, (d, t) in enumerate(zip(images, target, strict=True))])
    await cancel_queued(admin, pid)
    state = await embed(app, pid, [HOG])
    assert state.status == "done", state
    return Digits(pid, [int(item["id"]) for item in items], target)


#: A test on a copy of :func:`digits_project`'s project, built once per backend and test process
#: (tests/_prepared.py); ``prepared`` is its :class:`Digits`.
DIGITS = pytest.mark.prepared.with_args(digits_project)
