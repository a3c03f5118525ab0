"""The train job is resumable: claimed again after its worker died past storing the version (or
after recording its end failed), it returns that version instead of training another, with the
result the first run gave."""

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
