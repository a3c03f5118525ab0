"""``GET /projects/{id}/export`` and ``POST /projects/{id}/import`` (privilege ``import_export``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server import _label_store as store
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
from server.errors import ApiError, invalid, validation_details
from server.formats import coco, cvat, labelstudio, masks, native, table, voc, yolo
from server.formats._importing import ImportFileError, Incoming, images_by_name, run_import
from server.formats._names import NameIndex
from server.formats._source import ExportJob, Snapshot, open_snapshot
from server.image_query import ImageFilter
from server.labels import LabelIn
from server.limits import limit_body, read_limited, upload_limit
from server.models import Image, LabelDef
from server.permissions import Privilege
from server.preferences import effective_settings

EXPORTERS: dict[str, ModuleType] = {"json": native, "csv": table, "coco": coco, "yolo": yolo,
                                    "voc": voc, "masks": masks, "labelstudio": labelstudio,
                                    "cvat": cvat}
IMPORTERS: dict[str, Callable[[bytes], list[Incoming]]] = {
    "json": lambda body: native.parse(body)[0], "csv": table.parse, "coco": coco.parse, "masks": masks.parse,
}
#: The op-log seq an export reflects (every format; json and coco also carry it inside).
SEQ_HEADER = "X-Labelhub-Seq"
#: Formats whose files name images their own way (matched through a NameIndex of the project).
INDEXED_IMPORTERS: dict[str, Callable[[bytes, NameIndex], list[Incoming]]] = {
    "yolo": yolo.parse, "voc": voc.parse, "labelstudio": labelstudio.parse,
    "cvat": cvat.parse,
}
#: Parse cost per body byte (``server.offload`` units): a body past ~200 KB is parsed in a worker.
_PARSE_COST_PER_BYTE = 1
_OPTIONS = {"task": {"detect", "segment"}, "crowd_rle": {"0", "1", "true", "false"}}


def _format(request: Request, allowed: Any) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in allowed:
        raise invalid(f"format must be one of {', '.join(allowed)}",
                      [{"field": "format", "message": "unknown format"}])
    return fmt


async def export(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    fmt = _format(request, EXPORTERS)
    flt = parse_as(ImageFilter, ImageFilter.from_query(request.query_params))
    options = {k: v for k, v in request.query_params.items() if k in ("task", "types", "crowd_rle", "image_url")}
    for key, values in _OPTIONS.items():
        if key in options and options[key] not in values:
            raise invalid(f"{key} must be one of {', '.join(sorted(values))}")
    async with unit_of_work(request) as (session, user):
        project, _ = await project_access(session, user, project_id, Privilege.IMPORT_EXPORT)
        filename = f"project-{project.id}-{fmt}.{EXPORTERS[fmt].SUFFIX}"
    snapshot = await open_snapshot(request.app.state.sessions, project_id)
    job = ExportJob(snapshot, project_id, flt, options)
    return StreamingResponse(_closing(EXPORTERS[fmt].export(job), snapshot),
                             media_type=EXPORTERS[fmt].MEDIA_TYPE,
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      SEQ_HEADER: str(snapshot.seq)})


async def _closing(body: AsyncIterator[bytes], snapshot: Snapshot) -> AsyncIterator[bytes]:
    """The export's bytes; its snapshot ends with it (finished, failed or abandoned)."""
    try:
        async for chunk in body:
            yield chunk
    finally:
        await snapshot.close()


async def import_labels(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    fmt = _format(request, sorted(IMPORTERS.keys() | INDEXED_IMPORTERS.keys()))
    dry_run = query_bool(request, "dry_run", False)
    mode = request.query_params.get("mode")
    if mode not in (None, "", "replace", "merge"):
        raise invalid("mode must be replace or merge (default: the project's override setting)")
    # The privilege first: nobody else makes the server read a file (counted while reading; F1).
    await authorize(request, needs(project_id, Privilege.IMPORT_EXPORT))
    body = await read_body(request)
    max_mask_pixels = request.app.state.settings.max_mask_pixels
    records, raw_defs = await _parse(request, project_id, fmt, body, max_mask_pixels)
    defs = _valid_defs(raw_defs)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.IMPORT_EXPORT, lock=True)
        settings = await effective_settings(session, project_id, user.id)
        replace = settings.override_labels_on_import if not mode else mode == "replace"
        report = await run_import(session, project_id, user.id, records, settings,
                                  replace=replace, dry_run=dry_run)
        if report.refused and not dry_run:
            raise ApiError(422, "import_refused",
                           f"{report.refused} of {report.rows} rows were refused; nothing was imported",
                           report.to_dict())
        if defs and not dry_run:
            await _label_defs(session, project_id, defs)
        return JSONResponse(report.to_dict())


def _valid_defs(defs: list[dict[str, Any]]) -> list[LabelIn]:
    """A native file's label definitions, checked by the model ``POST .../labels`` uses (one rule
    in one place): 422 naming ``labels.N.field``, before anything is written. Keys other than
    name, color and shortcut are ignored, as the export writes no others."""
    out = []
    for i, d in enumerate(defs):
        try:
            out.append(LabelIn.model_validate({k: d[k] for k in ("name", "color", "shortcut") if k in d}))
        except ValidationError as exc:
            details = validation_details(exc)
            where = f"labels.{i}.{details[0]['field'] or 'name'}"
            raise ApiError(422, "invalid", f"{where}: {details[0]['message']}", details) from None
    return out


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


async def _parse(request: Request, project_id: int, fmt: str, body: bytes,
                 max_mask_pixels: int) -> tuple[list[Incoming], list[dict[str, Any]]]:
    """The file's records (and a native file's label definitions), parsed in the worker pool:
    decoding is CPU work the event loop must not do. Masks are read in two steps: the image
    names from the ZIP's directory, then each mask checked against its image's size before it
    is decoded."""
    cost = len(body) * _PARSE_COST_PER_BYTE
    try:
        if fmt == "json":
            return await offload.run(native.parse, body, cost=cost)
        if fmt in INDEXED_IMPORTERS:
            async with unit_of_work(request) as (session, _user):
                index = await name_index(session, project_id)
            return await offload.run(INDEXED_IMPORTERS[fmt], body, index, cost=cost), []
        if fmt != "masks":
            return await offload.run(IMPORTERS[fmt], body, cost=cost), []
        names = await offload.run(masks.image_names, body, cost=cost)
        async with unit_of_work(request) as (session, _user):
            sizes = await image_sizes(session, project_id, names)
        # Decoding costs the pixels it may produce, whatever the file's size: always the pool.
        return await offload.run(masks.parse, body, sizes, max_mask_pixels,
                                 cost=max(cost, offload.get().inline_cost)), []
    except ImportFileError as exc:
        raise ApiError(400, "bad_file", str(exc)) from None
    except offload.Busy as exc:
        raise ApiError(503, "busy", exc.message) from None


async def name_index(session: AsyncSession, project_id: int) -> NameIndex:
    """Every image of the project by the names a foreign file may use for it."""
    rows = await session.execute(select(Image.name, Image.width, Image.height)
                                 .where(Image.project_id == project_id))
    return NameIndex.build([(n, w, h) for n, w, h in rows])


async def image_sizes(session: AsyncSession, project_id: int,
                      names: set[str]) -> dict[str, tuple[int, int]]:
    """(width, height) by name of the project's images named in ``names`` (a name two images
    share is left out: the import refuses it anyway)."""
    found = await images_by_name(session, project_id, names)
    return {name: (m[0][1], m[0][2]) for name, m in found.items() if len(m) == 1}


async def _label_defs(session: AsyncSession, project_id: int, defs: list[LabelIn]) -> None:
    """Colors and shortcuts from a native file (labels are created; existing ones recolored)."""
    ids = await store.ensure_label_defs(session, project_id, [d.name for d in defs])
    for d in defs:
        if d.name not in ids:
            continue
        values: dict[str, Any] = {}
        if d.color is not None:
            values["color"] = d.color
        if d.shortcut is not None:
            taken = (await session.execute(select(LabelDef.id).where(
                LabelDef.project_id == project_id, LabelDef.shortcut == d.shortcut))).scalar_one_or_none()
            if taken is None or taken == ids[d.name]:
                values["shortcut"] = d.shortcut
        if values:
            await session.execute(update(LabelDef).where(LabelDef.id == ids[d.name]).values(**values))


routes = [
    Route("/api/v1/projects/{project_id}/export", export, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/import", import_labels, methods=["POST"]),
]
