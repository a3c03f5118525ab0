"""The embed job end to end: uploads queue it, a real worker runs it, vectors land in the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata
from sqlalchemy import select
from starlette.applications import Starlette

from server import demo
from server.ai import model
from server.ai.features import HOG, LITE0
from server.demo import seed_demo
from server.models import ImageEmbedding
from server.storage import LocalStore, original_key
from tests.ai._digits import cancel_queued, digits, embed, png, upload
from tests.conftest import Api, make_project
from tests.jobs.conftest import ended, running_worker, wait_job


async def stored(app: Starlette) -> dict[tuple[str, str], ImageEmbedding]:
    async with app.state.sessions() as session:
        rows = (await session.execute(select(ImageEmbedding))).scalars().all()
        return {(r.sha256, r.feature): r for r in rows}


async def test_uploads_queue_one_embed_job_for_the_project(admin: Api) -> None:
    pid = await make_project(admin)
    images, _ = digits(per_class=1)
    await upload(admin, pid, [("a.png", images[0])])
    await upload(admin, pid, [("b.png", images[1]), ("c.png", images[2])])
    await upload(admin, pid, [("a-again.png", images[0])])  # known content: nothing new
    jobs = (await admin.client.get(f"/api/v1/projects/{pid}/jobs?kind=embed")).json()["jobs"]
    assert [(j["status"], j["params"]) for j in jobs] == [("queued", {})]


async def test_embed_job_stores_float16_vectors_and_lists_undecodable_images(
        app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    photos = [png(skdata.chelsea()[:, :, ::-1]), png(skdata.coffee()[:, :, ::-1]),
              png(skdata.astronaut()[:, :, ::-1])]
    items = await upload(admin, pid, [("cat.png", photos[0]), ("coffee.png", photos[1]),
                                      ("astronaut.png", photos[2])])
    broken = items[2]
    # The stored file rots on disk after the upload: the job cannot decode it.
    LocalStore(app.state.settings.data_dir).path(original_key(broken["sha256"])).write_bytes(
        b"not an image")
    jobs = (await admin.client.get(f"/api/v1/projects/{pid}/jobs?kind=embed")).json()["jobs"]
    assert len(jobs) == 1

    await cancel_queued(admin, pid)
    state = await embed(app, pid)
    assert state.status == "done", state
    assert state.result is not None
    assert state.result["embedded"] == 2
    assert [f["image"] for f in state.result["failed"]] == [broken["id"]]
    assert "decode" in state.result["failed"][0]["error"]
    assert (state.progress.done, state.progress.total) == (3, 3)

    rows = await stored(app)
    assert set(rows) == {(i["sha256"], k) for i in items[:2] for k in (LITE0, HOG)}
    for (_, key), row in rows.items():
        assert row.dtype == "float16" and len(row.vector) == 2 * row.dim
        vec = np.frombuffer(row.vector, "<f2").astype(np.float32)
        assert row.dim == {LITE0: 1280, HOG: 1764}[key]
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 2e-3

    # Run again: only the broken one is still missing, and it is reported again.
    again = await embed(app, pid)
    assert again.result is not None and again.result["embedded"] == 0
    assert [f["image"] for f in again.result["failed"]] == [broken["id"]]
    assert (await stored(app)).keys() == rows.keys()


async def test_corrupted_weights_fail_the_job_clearly_and_nothing_else_breaks(
        app: Starlette, admin: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(b"\x80\x02 this is not the weights file" * 100)
    monkeypatch.setattr(model, "weights_path", lambda: bad)
    pid = await make_project(admin)
    images, _ = digits(per_class=1)
    items = await upload(admin, pid, [(f"{i}.png", d) for i, d in enumerate(images[:3])])
    await cancel_queued(admin, pid)

    state = await embed(app, pid)
    assert state.status == "failed"
    assert state.error is not None and "image features cannot be computed" in state.error
    assert "weights" in state.error or "sha256" in state.error
    assert await stored(app) == {}

    # The server goes on: similarity says why it cannot answer, HOG alone still embeds.
    resp = await admin.client.get(f"/api/v1/projects/{pid}/images/{items[0]['id']}/similar")
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "not_ready" and error["job"]["status"] == "failed"
    assert "failed" in error["message"]
    assert (await embed(app, pid, [HOG])).status == "done"
    assert len(await stored(app)) == 3


async def test_the_demo_project_is_embedded_by_its_job(app: Starlette, admin: Api) -> None:
    pid = await seed_demo(app)
    assert pid is not None
    jobs = (await admin.client.get(f"/api/v1/projects/{pid}/jobs?kind=embed")).json()["jobs"]
    assert [j["status"] for j in jobs] == ["queued"]
    async with running_worker(app, kinds=["embed"]):
        state = await wait_job(app, jobs[0]["id"], ended, within=120)
    assert state.status == "done" and state.result is not None
    assert state.result["embedded"] == demo.COUNT and state.result["failed"] == []
    images = (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["images"]
    resp = await admin.client.get(f"/api/v1/projects/{pid}/images/{images[0]['id']}/similar")
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["items"]) == demo.COUNT - 1
