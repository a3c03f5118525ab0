"""Big imports and exports as durable jobs (``server/jobs/``), with progress.

``GET .../export?async=1`` and ``POST .../import?async=1`` (or an import body over
``LABELHUB_IMPORT_JOB_MB``) answer ``202 {"job": ...}``; a worker runs the job. Files travel
through the image store (``transfers/`` keys; local directory or S3), so the worker may run on
another machine than the request. An export job writes its file there as it is produced and
reports images read / images; its result says where to download it
(``GET .../transfers/{job_id}/file``, from any app process). An import job reads the stored
upload, parses, applies it all or nothing, removes the upload, and its result is the report
(``status`` 200) or the error the request would have answered (``status`` 400/422, ``error``).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server._upload_save import unavailable
from server._web import path_int, project_access, unit_of_work
from server.db import transaction
from server.errors import ApiError
from server.formats._pipeline import (
    EXPORTERS,
    apply_import,
    export_stream,
    export_type,
    parse_file,
    valid_defs,
)
from server.image_query import ImageFilter, apply_filter
from server.jobs import JobContext, Status, defer, task
from server.jobs.feed import state_of
from server.models import Image, Job, User
from server.permissions import Privilege
from server.settings import Settings
from server.storage import StorageUnavailable, open_store

__all__ = ["EXPORT_KIND", "IMPORT_KIND", "queue_export", "queue_import", "routes"]

EXPORT_KIND = "export"
IMPORT_KIND = "import"
TRANSFERS = "transfers/"  # store keys of import uploads and export jobs' files


def _export_key(job_id: int, fmt: str, suffix: str) -> str:
    return f"{TRANSFERS}export-{job_id}-{fmt}.{suffix}"


async def _accepted(session: AsyncSession, job_id: int) -> Response:
    await session.flush()
    job = await session.get(Job, job_id)
    assert job is not None
    return JSONResponse({"job": state_of(job).model_dump(mode="json")}, status_code=202)


async def queue_export(session: AsyncSession, user: User, project_id: int, fmt: str,
                       flt: dict[str, Any], options: dict[str, str]) -> Response:
    job_id = await defer(session, kind=EXPORT_KIND, project_id=project_id, created_by=user.id,
                         params={"format": fmt, "filter": flt, "options": options})
    return await _accepted(session, job_id)


async def queue_import(session: AsyncSession, settings: Settings, user: User, project_id: int,
                       fmt: str, body: bytes, mode: str | None, dry_run: bool) -> Response:
    key = f"{TRANSFERS}import-{project_id}-{os.urandom(8).hex()}.upload"
    try:
        await open_store(settings).put_many([(key, body)])
    except StorageUnavailable as exc:
        raise unavailable(exc) from None
    job_id = await defer(session, kind=IMPORT_KIND, project_id=project_id, created_by=user.id,
                         params={"format": fmt, "key": key, "mode": mode, "dry_run": dry_run,
                                 "user_id": user.id})
    return await _accepted(session, job_id)


async def _count(ctx: JobContext, flt: ImageFilter | None) -> int:
    stmt: Any = select(Image.id).where(Image.project_id == ctx.project_id)
    if flt is not None:
        stmt = apply_filter(stmt, flt)
    async with transaction(ctx.sessions) as session:
        return int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())


@task(EXPORT_KIND)
async def export_job(ctx: JobContext) -> dict[str, Any]:
    """Params: ``format``, ``filter`` (the image list's filter keys), ``options``."""
    project_id = ctx.project_id
    if project_id is None:
        raise ValueError("an export job belongs to a project")
    fmt = str(ctx.params["format"])
    flt = ImageFilter.model_validate(ctx.params["filter"]) if ctx.params.get("filter") else None
    store = open_store(ctx.settings)
    total, done = await _count(ctx, flt), 0

    async def on_batch(n: int) -> None:
        nonlocal done
        done += n
        await ctx.progress(done, total)

    await ctx.progress(0, total)
    options = dict(ctx.params.get("options") or {})
    images = options.get("images") in ("1", "true")
    seq, body = await export_stream(ctx.sessions, project_id, fmt, flt, options, on_batch,
                                    store if images else None)
    suffix = export_type(fmt, images)[1]
    size = await store.put_stream(_export_key(ctx.job_id, fmt, suffix), body)
    await ctx.progress(total, total)
    return {"format": fmt, "seq": seq, "bytes": size, "images": total,
            "filename": f"project-{project_id}-{fmt}.{suffix}",
            "download": f"/api/v1/projects/{project_id}/transfers/{ctx.job_id}/file"}


@task(IMPORT_KIND)
async def import_job(ctx: JobContext) -> dict[str, Any]:
    """Params: ``format``, ``file`` (the stored upload), ``mode``, ``dry_run``, ``user_id``."""
    project_id = ctx.project_id
    if project_id is None:
        raise ValueError("an import job belongs to a project")
    store = open_store(ctx.settings)
    key = str(ctx.params["key"])
    if not key.startswith(TRANSFERS):
        raise ValueError("an import job reads its upload from the transfers/ keys")
    try:
        data = await store.get(key)
    except FileNotFoundError:
        return {"status": 410, "error": {"code": "gone", "message": "the uploaded file is no longer stored"}}

    async def run(fn: Any, *args: Any, cost: int) -> Any:
        return await ctx.run_cpu(fn, *args)  # the worker's threads: its loop keeps its lease

    try:
        await ctx.progress(0, 2)
        records, raw_defs = await parse_file(ctx.sessions, project_id, str(ctx.params["format"]),
                                             data, ctx.settings.max_mask_pixels, run)
        defs = valid_defs(raw_defs)
        await ctx.progress(1, 2)
        async with transaction(ctx.sessions) as session:
            user = await session.get(User, int(ctx.params["user_id"]))
            if user is None:
                raise ApiError(403, "forbidden", "the user who started the import no longer exists")
            # Checked again as the import applies: the privilege may have gone meanwhile.
            await project_access(session, user, project_id, Privilege.IMPORT_EXPORT, lock=True)
            report = await apply_import(session, project_id, user.id, records, defs,
                                        ctx.params.get("mode"), bool(ctx.params.get("dry_run")))
        await ctx.progress(2, 2)
        await store.delete_many([key])
        return {"status": 200, "report": report}
    except ApiError as exc:
        await store.delete_many([key])
        return {"status": exc.status, "error": {"code": exc.code, "message": exc.message, "details": exc.details}}


async def download(request: Request) -> Response:
    """``GET /api/v1/projects/{id}/transfers/{job_id}/file``: a finished export job's file."""
    project_id, job_id = path_int(request, "project_id"), path_int(request, "job_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.IMPORT_EXPORT)
        job = await session.get(Job, job_id)
        if job is None or job.project_id != project_id or job.kind != EXPORT_KIND:
            raise ApiError(404, "not_found", "no such export job in this project")
        if job.status != Status.DONE:
            raise ApiError(409, "not_ready", f"the export job is {job.status}", extra={"job": job_id})
        result = dict(job.result or {})
    suffix = str(result["filename"]).rsplit(".", 1)[-1]
    try:
        blob = await open_store(request.app.state.settings).open(
            _export_key(job_id, str(result["format"]), suffix))
    except FileNotFoundError:
        raise ApiError(410, "gone", "the export file is no longer stored: export again") from None
    except StorageUnavailable as exc:
        raise unavailable(exc) from None
    media_type = "application/zip" if suffix == "zip" else EXPORTERS[result["format"]].MEDIA_TYPE
    return StreamingResponse(blob.chunks, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{result["filename"]}"',
        "Content-Length": str(blob.size), "X-Labelhub-Seq": str(result["seq"])})


routes = [Route("/api/v1/projects/{project_id}/transfers/{job_id}/file", download, methods=["GET"])]
