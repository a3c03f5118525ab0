"""Auto-retrain (server/ai/retrain.py): after N new human-labeled images an idle worker's check
queues a new version of the newest trained model — once, and never while one is training."""

from __future__ import annotations

from sqlalchemy import select
from starlette.applications import Starlette

from server.ai.retrain import check_all, check_project, retrain_due
from server.db import transaction
from server.jobs import registry
from server.models import Job
from tests.ai._models import small_digits, train
from tests.ai.test_suggestions import label_each
from tests.conftest import Api


def test_the_rule() -> None:
    assert retrain_due(5, 5, busy=False) and retrain_due(9, 5, busy=False)
    assert not retrain_due(4, 5, busy=False)
    assert not retrain_due(50, 5, busy=True)
    assert not retrain_due(50, None, busy=False)
    assert check_all in registry.idle_hooks()


async def check(app: Starlette, pid: int) -> int | None:
    async with transaction(app.state.sessions) as session:
        return await check_project(session, pid)


async def test_retrains_after_n_new_labeled_images(app: Starlette, admin: Api) -> None:
    d = await small_digits(admin, classes=2)
    settings = f"/api/v1/projects/{d.pid}/settings"
    resp = await admin.client.patch(settings, json={"retrain_after_images": 3})
    assert resp.status_code == 200 and resp.json()["project"]["retrain_after_images"] == 3
    assert await check(app, d.pid) is None  # no trained model yet: the first is a person's choice
    assert (await train(app, admin, d.pid, name="pair")).status == "done"
    assert await check(app, d.pid) is None  # nothing labeled since

    await label_each(admin, d.pid, {i: "digit 0" for i in d.unlabeled[:2]})
    assert await check(app, d.pid) is None  # 2 of 3
    await label_each(admin, d.pid, {d.unlabeled[2]: "digit 1"})
    queued = await check_all(app.state.sessions)
    async with app.state.sessions() as session:
        jobs = (await session.execute(select(Job).where(Job.project_id == d.pid, Job.kind == "train")
                                      .order_by(Job.id))).scalars().all()
    assert len(jobs) == 2 and queued == [jobs[-1].id] and jobs[-1].status == "queued"
    assert jobs[-1].params["model_id"] == jobs[0].params["model_id"]
    assert jobs[-1].params["auto_retrain"] is True and jobs[-1].params["features"] == ["hog@1"]
    assert await check(app, d.pid) is None  # it is queued: not twice

    # Off again: nothing is queued however much is labeled.
    resp = await admin.client.patch(settings, json={"retrain_after_images": None})
    assert resp.json()["project"]["retrain_after_images"] is None
    assert await check_all(app.state.sessions) == []
    bad = await admin.client.patch(settings, json={"retrain_after_images": 0})
    assert bad.status_code == 422
