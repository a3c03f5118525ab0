"""Routes for images: upload (files, ZIP), list with the shared filter, get, bytes, delete, smart select.

Uploads follow ``server/_upload_save.py`` (decode in the offload pool, files first, rows in
bulk). Bytes come from the store (``server/storage/``): a local file by sendfile, an S3 object
streamed; both with an ETag (content-addressed, so it never changes) and a long cache life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server import _smart
from server._multipart import read_form
from server._upload_save import (
    begin_upload,
    contents_in_use,
    finish_upload,
    lock_contents,
    prepare_all,
    sweep,
    unavailable,
    write_files,
)
from server._uploads import (
    MAX_FILES,
    UNZIP_FACTOR,
    Staged,
    clean_name,
    from_bytes,
    parse_labels,
    read_zip,
    result_error,
)
from server._web import (
    BulkJSONResponse,
    parse_as,
    path_int,
    project_access,
    query_int,
    unit_of_work,
)
from server.ai.embeddings import forget_contents
from server.errors import ApiError, invalid, not_found
from server.image_query import ImageFilter, apply_filter, image_filter_query, image_items
from server.limits import limit_body
from server.models import Image, User
from server.permissions import Privilege
from server.storage import (
    THUMB_MIME,
    ImageRejected,
    StorageUnavailable,
    Store,
    content_keys,
    open_store,
    original_key,
    thumb_key,
)

log = logging.getLogger(__name__)

# Content-addressed bytes never change; "private" because they are only for members.
CACHE_CONTROL = "private, max-age=31536000, immutable"


MAX_ID = 2**31 - 1  # ids are 32-bit integers; past that PostgreSQL refuses the parameter


def path_id(request: Request, name: str) -> int:
    value = path_int(request, name)
    if not 1 <= value <= MAX_ID:
        raise not_found(name.removesuffix("_id"))
    return value


def image_store(request: Request) -> Store:
    return open_store(request.app.state.settings)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.strip() == "":
        return False
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise invalid(f"{name} must be true or false")


async def _read_form(request: Request, project_id: int) -> tuple[FormData, int]:
    """Check the privilege before reading a byte of the body, then parse it within the limit."""
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.UPLOAD)
    limit: int = request.app.state.settings.max_upload_bytes
    try:
        form = await limit_body(request, limit).form(max_files=MAX_FILES, max_fields=100)
    except HTTPException as exc:
        # Starlette's parser says "Too many files. Maximum number of files is N." as a 400.
        if exc.status_code == 400 and "too many files" in str(exc.detail).lower():
            raise ApiError(413, "too_many_files",
                           f"an upload request holds at most {MAX_FILES} files; send the rest "
                           "in further requests", {"limit_files": MAX_FILES}) from None
        raise
    return form, limit


ROWS_PER_STEP = 100


async def _save(request: Request, project_id: int, staged: list[Staged]) -> Response:
    store = image_store(request)
    await prepare_all(staged, request.app.state.settings.max_upload_bytes)
    upload = await begin_upload(request.app.state.sessions, project_id, staged)
    await write_files(request.app.state.sessions, store, staged, upload)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.UPLOAD)
        saved = await finish_upload(session, project_id, user.id, staged, upload)
        ids = sorted({s.image_id for s in saved if s.image_id is not None})
        rows: list[Image] = []
        # Loaded in steps (each row's ORM instance is built on the loop, ~20 us): between two
        # steps the hub serves edits (server/image_query.py, ITEMS_PER_STEP).
        for start in range(0, len(ids), ROWS_PER_STEP):
            rows += (await session.execute(select(Image).where(
                Image.id.in_(ids[start:start + ROWS_PER_STEP])))).scalars().all()
        items = {item["id"]: item for item in await image_items(session, rows)}
        results: list[dict[str, Any]] = []
        for entry in saved:
            if entry.image_id is None:
                assert entry.item.error is not None
                results.append(result_error(entry.item.name, entry.item.error))
            else:
                results.append({"name": entry.item.name, "ok": True,
                                "duplicate": entry.duplicate, "image": items[entry.image_id]})
        status = 201 if any(r["ok"] for r in results) else 422
        return BulkJSONResponse({"results": results}, status_code=status)


async def upload_images(request: Request) -> Response:
    project_id = path_id(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.UPLOAD)
    limit: int = request.app.state.settings.max_upload_bytes
    # Read on the loop, but cheaply: server/_multipart.py (Starlette's parser took ~70 ms of
    # the loop per 1,000 small files); the parts' bytes are decoded in the offload pool.
    form = await read_form(limit_body(request, limit).stream(),
                           request.headers.get("content-type", ""), "files", MAX_FILES)
    labels = parse_labels(next(iter(form.fields.get("labels", [])), None))
    if not form.files:
        raise invalid("send one or more files in multipart fields named 'files'")
    staged = [from_bytes(clean_name(part.filename), part.data, limit, labels)
              if part is not None else
              Staged("", labels, error=ImageRejected("not_a_file", "the field is not a file"))
              for part in form.files]
    form.files.clear()  # the bytes live on in ``staged`` only
    return await _save(request, project_id, staged)


async def upload_zip(request: Request) -> Response:
    project_id = path_id(request, "project_id")
    form, limit = await _read_form(request, project_id)
    staged: list[Staged] = []
    try:
        labels = parse_labels(_text(form.get("labels")))
        folders = _flag(_text(form.get("labels_from_folders")), "labels_from_folders")
        files = form.getlist("file")
        if len(files) != 1 or not isinstance(files[0], UploadFile):
            raise invalid("send exactly one ZIP archive in a multipart field named 'file'")
        staged = await run_in_threadpool(read_zip, files[0].file, limit * UNZIP_FACTOR,
                                         limit, folders, labels)
        if not staged:
            raise invalid("the ZIP holds no files")
        return await _save(request, project_id, staged)
    finally:
        await form.close()


async def list_images(request: Request) -> Response:
    project_id = path_id(request, "project_id")
    offset = query_int(request, "offset", 0, 0, 10**9)
    limit = query_int(request, "limit", 100, 1, 500)
    flt = parse_as(ImageFilter, ImageFilter.from_query(request.query_params))
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        counted = apply_filter(select(func.count()).select_from(Image)
                               .where(Image.project_id == project_id), flt)
        total = (await session.execute(counted)).scalar_one()
        rows = (await session.execute(
            image_filter_query(project_id, flt).offset(offset).limit(limit))).scalars().all()
        items = await image_items(session, rows)
        return BulkJSONResponse({"total": total, "offset": offset, "limit": limit, "images": items})


async def image_access(session: AsyncSession, user: User, image_id: int,
                       needed: Privilege) -> Image:
    """The image if the user may see its project (404 otherwise) and holds ``needed`` (403)."""
    image = await session.get(Image, image_id)
    if image is None:
        raise not_found("image")
    try:
        await project_access(session, user, image.project_id, needed)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found("image") from None
        raise
    return image


async def get_image(request: Request) -> Response:
    image_id = path_id(request, "image_id")
    async with unit_of_work(request) as (session, user):
        image = await image_access(session, user, image_id, Privilege.VIEW)
        return JSONResponse((await image_items(session, [image]))[0])


async def _bytes(request: Request, thumb: bool) -> Response:
    image_id = path_id(request, "image_id")
    async with unit_of_work(request) as (session, user):
        image = await image_access(session, user, image_id, Privilege.VIEW)
        sha, mime, name = image.sha256, image.mime, image.name
    store = image_store(request)
    etag = f'"{sha}{"-thumb" if thumb else ""}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    asked = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    if etag in asked or "*" in asked:
        return Response(status_code=304, headers=headers)
    key = thumb_key(sha) if thumb else original_key(sha)
    media = THUMB_MIME if thumb else mime
    filename = None if thumb else name.rsplit("/", 1)[-1]
    path = store.local_path(key)
    if path is not None:  # the local disk: sendfile
        if not path.is_file():
            raise not_found("image file")
        return FileResponse(path, media_type=media, headers=headers, filename=filename,
                            content_disposition_type="inline")
    try:
        blob = await store.open(key)
    except FileNotFoundError:
        raise not_found("image file") from None
    except StorageUnavailable as exc:
        raise unavailable(exc) from None
    headers["Content-Length"] = str(blob.size)
    if filename is not None:
        # The same header FileResponse writes (RFC 5987 for names that are not ASCII).
        headers["Content-Disposition"] = FileResponse(
            "", filename=filename, content_disposition_type="inline").headers["content-disposition"]
    return StreamingResponse(blob.chunks, media_type=media, headers=headers)


async def image_file(request: Request) -> Response:
    return await _bytes(request, thumb=False)


async def image_thumbnail(request: Request) -> Response:
    return await _bytes(request, thumb=True)


async def delete_image(request: Request) -> Response:
    image_id = path_id(request, "image_id")
    store = image_store(request)
    async with unit_of_work(request) as (session, user):
        image = await image_access(session, user, image_id, Privilege.DELETE)
        await remove_images(session, store, [image])
        return Response(status_code=204)


async def remove_images(session: AsyncSession, store: Store, images: Sequence[Image]) -> None:
    """Delete image rows with their labels (the database cascades), and the files of contents
    no other image shares. A handful of statements for any number of images."""
    if not images:
        return
    shas = {image.sha256 for image in images}
    await lock_contents(session, shas)
    await session.execute(delete(Image).where(Image.id.in_([image.id for image in images]))
                          .execution_options(synchronize_session=False))
    for image in images:  # the rows are gone: the session must not flush them again
        session.expunge(image)
    orphans = shas - await contents_in_use(session, shas)
    if orphans:
        # Inside the transaction (and the content locks) so a concurrent upload cannot lose
        # its file; a store that is down fails the delete (503) and keeps the rows.
        await forget_contents(session, orphans)
        try:
            await store.delete_many([key for sha in sorted(orphans) for key in content_keys(sha)])
        except StorageUnavailable as exc:
            raise unavailable(exc) from None


async def smart_select(request: Request) -> Response:
    image_id = path_id(request, "image_id")
    body = await _smart.read_request(
        request, lambda session, user: image_access(session, user, image_id, Privilege.LABEL))
    async with unit_of_work(request) as (session, user):
        image = await image_access(session, user, image_id, Privilege.LABEL)
        sha, width, height = image.sha256, image.width, image.height
    async def read() -> bytes:
        try:
            return await image_store(request).get(original_key(sha))
        except FileNotFoundError:
            raise ApiError(404, "not_found", "the image file is missing") from None
        except StorageUnavailable as exc:
            raise unavailable(exc) from None

    result = await _smart.run(read, width, height, body)
    return JSONResponse(result)


SWEEP_EVERY = 60.0  # seconds between sweeps of abandoned upload files


async def _sweep_once(app: Starlette) -> None:
    settings = app.state.settings
    try:
        removed = await sweep(app.state.sessions, open_store(settings),
                              settings.upload_grace_seconds)
    except Exception:  # a store or database hiccup: the next round tries again
        log.warning("the sweep of abandoned upload files failed", exc_info=True)
        return
    if removed:
        log.info("removed the files of %d contents no committed upload holds", removed)


async def _sweeper(app: Starlette) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY)
        await _sweep_once(app)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Sweep abandoned upload files at startup (after a crash) and every minute."""
    await _sweep_once(app)
    task = asyncio.create_task(_sweeper(app))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


routes = [
    Route("/api/v1/projects/{project_id}/images", upload_images, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/images/zip", upload_zip, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/images", list_images, methods=["GET"]),
    Route("/api/v1/images/{image_id}", get_image, methods=["GET"]),
    Route("/api/v1/images/{image_id}", delete_image, methods=["DELETE"]),
    Route("/api/v1/images/{image_id}/file", image_file, methods=["GET"]),
    Route("/api/v1/images/{image_id}/thumbnail", image_thumbnail, methods=["GET"]),
    Route("/api/v1/images/{image_id}/smart-select", smart_select, methods=["POST"]),
]
