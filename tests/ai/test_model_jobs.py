"""The train job is resumable: claimed again after its worker died past storing the version (or
after recording its end failed), it returns that version instead of training another, with the
result the first run gave. A job whose examples no longer suffice when it runs fails, saying why."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from starlette.applications import Starlette

from server.db import transaction
from server.models import AiModelVersion, Job, utcnow
from tests.ai._models import run, small_digits
from tests.conftest import Api


async def test_a_train_job_claimed_again_returns_the_version_it_stored(
        app: Starlette, admin: Api) -> None:
    d = await small_digits(admin, classes=2, labeled=3)
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/models",
                                   json={"name": "m", "features": ["hog@1"]})
    job = resp.json()["job"]
    first = await run(app, job)
    assert first.status == "done" and first.result is not None
    # As if the worker died after the version's commit: running again, its lease run out.
    async with transaction(app.state.sessions) as session:
        await session.execute(update(Job).where(Job.id == job["id"]).values(
            status="running", lease_until=utcnow() - timedelta(seconds=1), finished_at=None,
            result=None))
    second = await run(app, job)
    assert second.status == "done" and second.result == first.result
    assert first.result["version"] == 1 and first.result["images"] == 6
    async with app.state.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(AiModelVersion))
                ).scalar_one() == 1


async def test_a_train_job_whose_examples_fell_short_fails_naming_the_model_and_label(
        app: Starlette, admin: Api) -> None:
    # Enough examples when the job was queued; two of one label's three removed before it ran.
    d = await small_digits(admin, classes=2, labeled=3)
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/models",
                                   json={"name": "m", "features": ["hog@1"]})
    assert resp.status_code == 202, resp.text
    job = resp.json()["job"]
    ones = [i for i, name in d.labeled.items() if name == "digit 1"][:2]
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/labels/apply", json={
        "op": {"kind": "remove_label", "label": "digit 1"}, "image_ids": ones})
    assert resp.status_code == 200, resp.text
    state = await run(app, job)
    assert state.status == "failed"
    assert state.error is not None and "cannot train 'm'" in state.error \
        and "label 'digit 1' has 1" in state.error, state.error
    async with app.state.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(AiModelVersion))
                ).scalar_one() == 0
