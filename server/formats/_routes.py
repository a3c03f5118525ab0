"""``GET /projects/{id}/export`` and ``POST /projects/{id}/import`` (privilege ``import_export``);
``?async=1`` (or an import over ``LABELHUB_IMPORT_JOB_MB``) runs them as jobs (``_jobs.py``)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server import offload
from server._web import (
    authorize,
    needs,
    parse_as,
    path_int,
    project_access,
    query_bool,
    unit_of_work,
)
from server.errors import ApiError, invalid
from server.formats import _jobs
from server.formats._pipeline import (
    EXPORT_OPTIONS,
    EXPORTERS,
    IMPORTERS,
    INDEXED_IMPORTERS,
    apply_import,
    export_stream,
    export_type,
    parse_file,
    valid_defs,
)
from server.image_query import ImageFilter
from server.limits import limit_body, read_limited, upload_limit
from server.permissions import Privilege
from server.storage import open_store

__all__ = ["SEQ_HEADER", "routes"]

#: The op-log seq an export reflects (every format; json and coco also carry it inside).
SEQ_HEADER = "X-Labelhub-Seq"


def _format(request: Request, allowed: Any) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in allowed:
        raise invalid(f"format must be one of {', '.join(allowed)}",
                      [{"field": "format", "message": "unknown format"}])
    return fmt


async def export(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    fmt = _format(request, EXPORTERS)
    raw_filter = ImageFilter.from_query(request.query_params)
    flt = parse_as(ImageFilter, raw_filter)
    options = {k: v for k, v in request.query_params.items() if k in EXPORT_OPTIONS}
    for key, values in EXPORT_OPTIONS.items():
        if key in options and values is not None and options[key] not in values:
            raise invalid(f"{key} must be one of {', '.join(sorted(values))}")
    as_job = query_bool(request, "async", False)
    images = options.get("images") in ("1", "true")
    media_type, suffix = export_type(fmt, images)
    async with unit_of_work(request) as (session, user):
        project, _ = await project_access(session, user, project_id, Privilege.IMPORT_EXPORT)
        filename = f"project-{project.id}-{fmt}.{suffix}"
        if as_job:
            return await _jobs.queue_export(session, user, project_id, fmt, raw_filter, options)
    store = open_store(request.app.state.settings) if images else None
    seq, body = await export_stream(request.app.state.sessions, project_id, fmt, flt, options,
                                    images=store)
    return StreamingResponse(body, media_type=media_type,
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      SEQ_HEADER: str(seq)})


async def import_labels(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    fmt = _format(request, sorted(IMPORTERS.keys() | INDEXED_IMPORTERS.keys()))
    dry_run = query_bool(request, "dry_run", False)
    as_job = query_bool(request, "async", False)
    mode = request.query_params.get("mode")
    if mode not in (None, "", "replace", "merge"):
        raise invalid("mode must be replace or merge (default: the project's override setting)")
    # The privilege first: nobody else makes the server read a file (counted while reading; F1).
    await authorize(request, needs(project_id, Privilege.IMPORT_EXPORT))
    body = await read_body(request)
    settings = request.app.state.settings
    if as_job or len(body) > settings.import_job_mb * 1024 * 1024:
        async with unit_of_work(request) as (session, user):
            await project_access(session, user, project_id, Privilege.IMPORT_EXPORT)
            return await _jobs.queue_import(session, settings, user, project_id, fmt, body, mode or None,
                                            dry_run)
    pool = offload.get()
    try:
        records, raw_defs = await parse_file(request.app.state.sessions, project_id, fmt, body,
                                             settings.max_mask_pixels, pool.run, pool.inline_cost)
    except offload.Busy as exc:
        raise ApiError(503, "busy", exc.message) from None
    defs = valid_defs(raw_defs)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.IMPORT_EXPORT, lock=True)
        return JSONResponse(await apply_import(session, project_id, user.id, records, defs, mode, dry_run))


async def read_body(request: Request) -> bytes:
    """The import file: the raw body, or the ``file`` field of a multipart form (``curl -F
    file=@labels.json``), both counted against the upload limit while they arrive."""
    limit = upload_limit(request)
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "multipart/form-data":
        return await read_limited(request, limit)
    try:
        form = await limit_body(request, limit).form(max_files=1, max_fields=10)
    except MultiPartException as exc:
        raise ApiError(400, "bad_form", exc.message) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("the form needs a file field named file",
                          [{"field": "file", "message": "missing"}])
        return await upload.read()
    finally:
        await form.close()


routes = [
    Route("/api/v1/projects/{project_id}/export", export, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/import", import_labels, methods=["POST"]),
    *_jobs.routes,
]
