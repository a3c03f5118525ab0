"""Auto-retrain: a new version of a project's newest trained model once enough images got new
human labels since it was last trained (the project setting ``retrain_after_images``).

Checked by idle workers (``server.jobs.registry.on_idle``, every ``IDLE_EVERY`` seconds), not on
the label-writing paths: those are the hub's hot path, and a retrain a few seconds late costs
nothing. Everything it reads is in the database (counts since the model's newest train job), so
any worker on any machine may run the check; the project row is locked first (``FOR UPDATE`` on
PostgreSQL, the write lock on SQLite), so two workers never queue two jobs for one count.

"New human labels": classification labels with source ``manual`` (what training uses) added
after the newest train job of that model was queued. A failed run therefore waits for another N
images instead of retrying every half minute.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.ai.model_store import TRAIN_KIND
from server.db import transaction
from server.jobs import ACTIVE, defer
from server.jobs.registry import on_idle
from server.models import AiModel, AiModelVersion, Image, ImageLabel, Job, Project
from server.preferences import project_layer

__all__ = ["check_all", "check_project", "new_images_since", "retrain_due"]

log = logging.getLogger("labelhub.ai")
RECENT_JOBS = 200  # train jobs of the project looked at to find a model's newest


def retrain_due(new_images: int, every: int | None, busy: bool) -> bool:
    """The rule: a setting is on, no training of that model is queued or running, and at least
    ``every`` images got new human labels."""
    return every is not None and not busy and new_images >= every


async def new_images_since(session: AsyncSession, project_id: int, since: datetime) -> int:
    """Images of the project that got a label from a person after ``since``."""
    stmt = (select(func.count(distinct(ImageLabel.image_id)))
            .join(Image, Image.id == ImageLabel.image_id)
            .where(Image.project_id == project_id, ImageLabel.source == "manual",
                   ImageLabel.created_at > since))
    return int((await session.execute(stmt)).scalar_one())


async def check_project(session: AsyncSession, project_id: int) -> int | None:
    """Queue a train job for the project's newest trained model when it is due; its id, or
    ``None``. Runs in the caller's transaction."""
    project = (await session.execute(select(Project).where(Project.id == project_id)
                                     .with_for_update())).scalar_one_or_none()
    if project is None:
        return None
    every = project_layer(project).retrain_after_images
    if every is None:
        return None
    newest = (await session.execute(
        select(AiModel, AiModelVersion.created_at)
        .join(AiModelVersion, AiModelVersion.model_id == AiModel.id)
        .where(AiModel.project_id == project_id, AiModel.kind == "trained")
        .order_by(AiModelVersion.created_at.desc(), AiModelVersion.id.desc()).limit(1))).first()
    if newest is None:
        return None  # the first model is a person's choice (name, labels, task)
    model, since = newest
    jobs = (await session.execute(
        select(Job).where(Job.project_id == project_id, Job.kind == TRAIN_KIND)
        .order_by(Job.id.desc()).limit(RECENT_JOBS))).scalars().all()
    mine = [j for j in jobs if int((j.params or {}).get("model_id", 0)) == model.id]
    busy = any(j.status in ACTIVE for j in mine)
    if mine:
        since = max(since, mine[0].created_at)
    count = await new_images_since(session, project_id, since)
    if not retrain_due(count, every, busy):
        return None
    last: dict[str, Any] = mine[0].params if mine else {}
    params = {"model_id": model.id, "labels": last.get("labels"),
              "features": last.get("features"), "created_by": None, "auto_retrain": True}
    job_id = await defer(session, kind=TRAIN_KIND, project_id=project_id, params=params)
    log.info("project %s: %s new labeled images, retraining model %r (job %s)",
             project_id, count, model.name, job_id)
    return job_id


@on_idle
async def check_all(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    """Check every project that has the setting on; the ids of the jobs queued."""
    async with sessions() as session:
        rows = (await session.execute(select(Project.id, Project.settings))).all()
    queued: list[int] = []
    for project_id, stored in rows:
        if not (stored or {}).get("retrain_after_images"):
            continue
        async with transaction(sessions) as session:
            job_id = await check_project(session, project_id)
        if job_id is not None:
            queued.append(job_id)
    return queued
