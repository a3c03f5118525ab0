"""REST for jobs, and the feed that pushes ``job`` events to the project's sockets.

``GET /api/v1/projects/{id}/jobs`` and ``GET .../jobs/{job}`` need ``view``;
``POST .../jobs/{job}/cancel`` needs to be the job's creator or to hold ``manage_members``
(the project's managers). Non-members get 404, as on every project route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server._web import path_int, project_access, query_int, unit_of_work
from server.errors import ApiError, forbidden, not_found
from server.jobs import queue
from server.jobs.feed import JobFeed, state_of
from server.jobs.status import Status
from server.models import Job
from server.permissions import Privilege, allowed
from server.protocol import JobEvent, JobState, encode

__all__ = ["lifespan", "routes"]


def _dump(state: JobState) -> dict[str, object]:
    return state.model_dump(mode="json")


def _statuses(request: Request) -> list[str] | None:
    raw = request.query_params.get("status")
    if not raw:
        return None
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    known = {str(s) for s in Status}
    bad = [s for s in wanted if s not in known]
    if bad:
        raise ApiError(422, "invalid", f"unknown status {bad[0]!r}; one of {', '.join(sorted(known))}")
    return wanted


async def list_jobs(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    statuses = _statuses(request)
    limit = query_int(request, "limit", 50, 1, 500)
    kind = request.query_params.get("kind")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        stmt = select(Job).where(Job.project_id == project_id)
        if statuses is not None:
            stmt = stmt.where(Job.status.in_(statuses))
        if kind:
            stmt = stmt.where(Job.kind == kind)
        jobs = (await session.execute(stmt.order_by(Job.id.desc()).limit(limit))).scalars().all()
        return JSONResponse({"jobs": [_dump(state_of(job)) for job in jobs]})


async def _job(request: Request, session: AsyncSession, project_id: int, *,
               lock: bool = False) -> Job:
    job_id = path_int(request, "job_id")
    stmt = select(Job).where(Job.id == job_id, Job.project_id == project_id)
    job = (await session.execute(stmt.with_for_update() if lock else stmt)).scalar_one_or_none()
    if job is None:
        raise not_found("job")
    return job


async def get_job(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        job = await _job(request, session, project_id)
        return JSONResponse(_dump(state_of(job)))


async def cancel_job(request: Request) -> Response:
    """Cancel a queued job at once, or ask a running one's worker to stop (within a second).
    Cancelling a job that already ended changes nothing and answers with its state."""
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        _project, actor = await project_access(session, user, project_id, Privilege.VIEW)
        job = await _job(request, session, project_id, lock=True)
        if job.created_by != user.id and not allowed(actor, Privilege.MANAGE_MEMBERS):
            raise forbidden("only who started a job, or a project manager (manage_members), "
                            "may cancel it")
        await queue.request_cancel(session, job)
        return JSONResponse(_dump(state_of(job)))


routes: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id}/jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
]


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the feed: a job's change goes to every socket joined to its project, in every
    process. Runs after the hub's lifespan (``app.state.hub``)."""
    state = app.state
    hub = state.hub

    def deliver(job: JobState) -> None:
        room = hub.rooms.get(job.project or 0)
        if room is None:
            return
        # Joining needed `view`; a connection that has lost it since hears no more.
        receivers = [c for c in room.connections if c.is_admin or c.privileges & Privilege.VIEW]
        if receivers:
            hub.send_to(receivers, encode(JobEvent(job=job)))

    feed = JobFeed(state.sessions, state.settings.resolved_database_url, on_change=deliver,
                   wanted=lambda: bool(hub.rooms))
    state.jobs = feed
    await feed.start()
    try:
        yield
    finally:
        await feed.stop()
