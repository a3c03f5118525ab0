"""Embed jobs as the REST side sees them: asking for one, describing one, and the 409 "not_ready"
answer given when vectors a request needs are not computed yet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.ai.embeddings import request_embedding
from server.ai.index import latest_embed_job
from server.db import transaction
from server.errors import ApiError
from server.jobs.feed import state_of
from server.models import Job


def job_info(job: Job) -> dict[str, Any]:
    """The job as the jobs API shows it (``GET /api/v1/projects/{id}/jobs/{job_id}``)."""
    return state_of(job).model_dump(mode="json")


def _failed_ids(job: Job) -> set[int]:
    failed = (job.result or {}).get("failed") if isinstance(job.result, dict) else None
    return {int(f["image"]) for f in failed or [] if isinstance(f, dict) and "image" in f}


async def not_ready(sessions: async_sessionmaker[AsyncSession], project_id: int,
                    image_ids: Sequence[int], what: str) -> ApiError:
    """The 409 for a request whose images (``image_ids``) have no vectors yet.

    Makes sure an embed job is on its way, in a transaction of its own (the request's own is
    rolled back with the error): unless one is queued or running, or the latest one failed
    (the network cannot load: retrying on every request would not help; ``POST .../embeddings``
    retries), or it could not decode these images.
    """
    async with transaction(sessions) as session:
        job = await latest_embed_job(session, project_id)
        undecodable = job is not None and job.status == "done" and bool(
            set(image_ids) & _failed_ids(job))
        if job is None or job.status == "cancelled" or (job.status == "done" and not undecodable):
            job_id = await request_embedding(session, project_id, None)
            await session.flush()
            job = await session.get(Job, job_id)
        assert job is not None
        info = job_info(job)
    if undecodable:
        message = f"{what}: the image could not be decoded, so it has no features"
    elif info["status"] == "failed":
        message = (f"{what}: computing image features failed ({info['error']}); "
                   f"fix the cause, then POST /api/v1/projects/{project_id}/embeddings")
    else:
        message = f"{what}: image features are being computed; retry when the job is done"
    return ApiError(409, "not_ready", message, extra={"job": info})
