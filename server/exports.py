"""Exports kept in the image store: ``POST /projects/{id}/exports`` writes an export (any format
of ``GET /projects/{id}/export``, same query) to ``exports/project-<id>/`` in the store, as it is
produced — a multipart upload on S3, a temporary file renamed into place locally — so a large
export is never held whole in memory and can be fetched later, from any app process.
Privilege ``import_export`` for all three routes.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server._upload_save import unavailable
from server._web import parse_as, path_int, project_access, unit_of_work
from server.errors import invalid, not_found
from server.formats._pipeline import EXPORT_OPTIONS, EXPORTERS
from server.formats._routes import _format
from server.formats._source import ExportJob
from server.image_query import ImageFilter
from server.permissions import Privilege
from server.storage import StorageUnavailable, open_store
from server.storage.rules import EXPORTS

__all__ = ["routes"]

_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}-[a-z]+\.[a-z]+$")


def _prefix(project_id: int) -> str:
    return f"{EXPORTS}project-{project_id}/"


def _item(project_id: int, name: str, size: int) -> dict[str, object]:
    return {"name": name, "size_bytes": size,
            "url": f"/api/v1/projects/{project_id}/exports/{name}"}


async def save_export(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    fmt = _format(request, EXPORTERS)
    flt = parse_as(ImageFilter, ImageFilter.from_query(request.query_params))
    options = {k: v for k, v in request.query_params.items()
               if k in EXPORT_OPTIONS and k != "images"}  # kept exports hold the labels only
    for key, values in EXPORT_OPTIONS.items():
        if key in options and values is not None and options[key] not in values:
            raise invalid(f"{key} must be one of {', '.join(sorted(values))}")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.IMPORT_EXPORT)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{secrets.token_hex(3)}-{fmt}.{EXPORTERS[fmt].SUFFIX}"
    job = ExportJob(request.app.state.sessions, project_id, flt, options)
    try:
        size = await open_store(request.app.state.settings).put_stream(
            _prefix(project_id) + name, EXPORTERS[fmt].export(job))
    except StorageUnavailable as exc:
        raise unavailable(exc) from None
    return JSONResponse({"format": fmt, **_item(project_id, name, size)}, status_code=201)


async def list_exports(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.IMPORT_EXPORT)
    prefix = _prefix(project_id)
    try:
        found = [(key.removeprefix(prefix), size)
                 async for key, size in open_store(request.app.state.settings).list(prefix)]
    except StorageUnavailable as exc:
        raise unavailable(exc) from None
    found.sort(reverse=True)  # newest first: names start with the time
    return JSONResponse({"exports": [_item(project_id, n, s) for n, s in found if _NAME.match(n)]})


async def get_export(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    name = request.path_params["name"]
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.IMPORT_EXPORT)
    if not _NAME.match(name):
        raise not_found("export")
    try:
        blob = await open_store(request.app.state.settings).open(_prefix(project_id) + name)
    except FileNotFoundError:
        raise not_found("export") from None
    except StorageUnavailable as exc:
        raise unavailable(exc) from None
    fmt = name.rsplit("-", 1)[-1].split(".")[0]
    media = EXPORTERS[fmt].MEDIA_TYPE if fmt in EXPORTERS else "application/octet-stream"
    return StreamingResponse(blob.chunks, media_type=media, headers={
        "Content-Length": str(blob.size),
        "Content-Disposition": f'attachment; filename="project-{project_id}-{name}"'})


routes = [
    Route("/api/v1/projects/{project_id}/exports", save_export, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/exports", list_exports, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/exports/{name}", get_export, methods=["GET"]),
]
