"""The import and export steps shared by the routes (``_routes.py``) and the jobs (``_jobs.py``):
which module reads or writes each format, parsing a file (CPU work through a ``Runner``: the
offload pool in a request, the worker's threads in a job), applying it in one transaction, and
writing an export from one snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any, Protocol

import anyio
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import _label_store as store
from server.ai.imported import store_predictions, summary
from server.db import transaction
from server.errors import ApiError, validation_details
from server.formats import coco, cvat, labelstudio, masks, native, table, voc, yolo
from server.formats._images import with_images
from server.formats._importing import ImportFileError, Incoming, images_by_name, run_import
from server.formats._names import NameIndex
from server.formats._source import ExportJob, Snapshot, open_snapshot
from server.image_query import ImageFilter
from server.labels import LabelIn
from server.models import Image, LabelDef
from server.preferences import effective_settings
from server.storage import Store

__all__ = ["EXPORTERS", "EXPORT_OPTIONS", "IMPORTERS", "INDEXED_IMPORTERS", "Runner",
           "apply_import", "export_stream", "export_type", "parse_file", "valid_defs"]

EXPORTERS: dict[str, ModuleType] = {"json": native, "csv": table, "coco": coco, "yolo": yolo,
                                    "voc": voc, "masks": masks, "labelstudio": labelstudio,
                                    "cvat": cvat}
IMPORTERS: dict[str, Callable[[bytes], list[Incoming]]] = {
    "json": lambda body: native.parse(body)[0], "csv": table.parse, "coco": coco.parse, "masks": masks.parse,
}
#: Formats whose files name images their own way (matched through a NameIndex of the project).
INDEXED_IMPORTERS: dict[str, Callable[[bytes, NameIndex], list[Incoming]]] = {
    "yolo": yolo.parse, "voc": voc.parse, "labelstudio": labelstudio.parse, "cvat": cvat.parse,
}
#: Export query options and the values each may take (None: any text).
EXPORT_OPTIONS: dict[str, set[str] | None] = {
    "task": {"detect", "segment"}, "types": None, "crowd_rle": {"0", "1", "true", "false"},
    "image_url": None, "images": {"0", "1", "true", "false"}, "mask_format": {"png", "bmp"},
}
#: Parse cost per body byte (``server.offload`` units): a body past ~200 KB is parsed in a worker.
PARSE_COST_PER_BYTE = 1


class Runner(Protocol):
    """Runs CPU work off the event loop: ``await run(fn, *args, cost=...)``."""

    def __call__(self, fn: Callable[..., Any], *args: Any, cost: int) -> Awaitable[Any]: ...


async def parse_file(sessions: async_sessionmaker[AsyncSession], project_id: int, fmt: str, body: bytes,
                     max_mask_pixels: int, run: Runner, inline_cost: int = 0
                     ) -> tuple[list[Incoming], list[dict[str, Any]]]:
    """The file's records (and a native file's label definitions). Masks are read in two steps:
    the image names from the ZIP's directory, then each mask checked against its image's size
    before it is decoded. ``ImportFileError`` -> 400 ``bad_file``."""
    cost = len(body) * PARSE_COST_PER_BYTE
    try:
        if fmt == "json":
            parsed: tuple[list[Incoming], list[dict[str, Any]]] = await run(native.parse, body, cost=cost)
            return parsed
        if fmt in INDEXED_IMPORTERS:
            async with transaction(sessions) as session:
                index = await name_index(session, project_id)
            return await run(INDEXED_IMPORTERS[fmt], body, index, cost=cost), []
        if fmt != "masks":
            return await run(IMPORTERS[fmt], body, cost=cost), []
        names = await run(masks.image_names, body, cost=cost)
        async with transaction(sessions) as session:
            sizes = await image_sizes(session, project_id, names)
        # Decoding costs the pixels it may produce, whatever the file's size: always the pool.
        return await run(masks.parse, body, sizes, max_mask_pixels, cost=max(cost, inline_cost)), []
    except ImportFileError as exc:
        raise ApiError(400, "bad_file", str(exc)) from None


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


def valid_defs(defs: list[dict[str, Any]]) -> list[LabelIn]:
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


async def apply_import(session: AsyncSession, project_id: int, user_id: int, records: list[Incoming],
                       defs: list[LabelIn], mode: str | None, dry_run: bool) -> dict[str, Any]:
    """Apply the records in the caller's transaction; 422 ``import_refused`` (the report in its
    details) when a row is refused, so that nothing is written."""
    settings = await effective_settings(session, project_id, user_id)
    replace = settings.override_labels_on_import if not mode else mode == "replace"
    report = await run_import(session, project_id, user_id, records, settings,
                              replace=replace, dry_run=dry_run)
    if report.refused and not dry_run:
        raise ApiError(422, "import_refused",
                       f"{report.refused} of {report.rows} rows were refused; nothing was imported",
                       report.to_dict())
    if defs and not dry_run:
        await _label_defs(session, project_id, defs)
    out = report.to_dict()
    if any(r.predictions for r in records) and not report.refused:
        out["predictions"] = await _predictions(session, project_id, user_id, records, dry_run)
    return out


async def _predictions(session: AsyncSession, project_id: int, user_id: int,
                       records: list[Incoming], dry_run: bool) -> dict[str, int]:
    """A file's predictions (Label Studio), stored in the import's transaction."""
    found = await images_by_name(session, project_id, {r.image for r in records if r.predictions})
    items = [(found[r.image][0][0], p) for r in records for p in r.predictions or []]
    if dry_run:
        return summary(items) | {"kept": 0}
    return await store_predictions(session, project_id, user_id, items)


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


def export_type(fmt: str, images: bool) -> tuple[str, str]:
    """(media type, file suffix) of an export; with the image files every format is a ZIP."""
    module = EXPORTERS[fmt]
    return ("application/zip", "zip") if images else (module.MEDIA_TYPE, module.SUFFIX)


async def export_stream(sessions: async_sessionmaker[AsyncSession], project_id: int, fmt: str,
                        flt: ImageFilter | None, options: dict[str, str],
                        on_batch: Callable[[int], Awaitable[None]] | None = None,
                        images: Store | None = None) -> tuple[int, AsyncIterator[bytes]]:
    """The op-log seq of the export's snapshot and its bytes (with the image files from
    ``images`` when given); the snapshot closes when the bytes end, fail or are abandoned."""
    snapshot = await open_snapshot(sessions, project_id)
    snapshot.on_batch = on_batch
    job = ExportJob(snapshot, project_id, flt, options, images)
    module = EXPORTERS[fmt]
    body = with_images(module, job) if images is not None and module.MEDIA_TYPE != "application/zip" \
        else module.export(job)
    return snapshot.seq, _closing(body, snapshot)


async def _closing(body: AsyncIterator[bytes], snapshot: Snapshot) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    finally:
        # Shielded: when the client goes away the response's task is cancelled, and the
        # connection must still go back to the pool.
        with anyio.CancelScope(shield=True):
            await snapshot.close()
