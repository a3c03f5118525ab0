"""Routes for images: upload (files, ZIP), list with the shared filter, get, bytes, delete, smart select."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from server import _smart
from server._uploads import (
    MAX_FILES,
    UNZIP_FACTOR,
    Staged,
    _lock_sha,
    clean_name,
    discard_all,
    parse_labels,
    result_error,
    save_staged,
    stage_stream,
    stage_zip,
)
from server._web import parse_as, path_int, project_access, query_int, unit_of_work
from server.ai.embeddings import forget_content
from server.errors import ApiError, invalid, not_found
from server.image_query import ImageFilter, apply_filter, image_filter_query, image_items
from server.limits import limit_body
from server.models import Image, User
from server.permissions import Privilege
from server.storage import THUMB_MIME, ImageRejected, ImageStore

# Content-addressed bytes never change; "private" because they are only for members.
CACHE_CONTROL = "private, max-age=31536000, immutable"


MAX_ID = 2**31 - 1  # ids are 32-bit integers; past that PostgreSQL refuses the parameter


def path_id(request: Request, name: str) -> int:
    value = path_int(request, name)
    if not 1 <= value <= MAX_ID:
        raise not_found(name.removesuffix("_id"))
    return value


def image_store(request: Request) -> ImageStore:
    return ImageStore(request.app.state.settings.image_dir)


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
    form = await limit_body(request, limit).form(max_files=MAX_FILES, max_fields=100)
    return form, limit


async def _save(request: Request, project_id: int, staged: list[Staged]) -> Response:
    store = image_store(request)
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.UPLOAD)
        saved = await save_staged(session, store, project_id, user.id, staged)
        rows = list({row.id: row for _, row, _ in saved if row is not None}.values())
        items = {item["id"]: item for item in await image_items(session, rows)}
        results: list[dict[str, Any]] = []
        for entry, row, duplicate in saved:
            if row is None:
                assert entry.error is not None
                results.append(result_error(entry.name, entry.error))
            else:
                results.append({"name": entry.name, "ok": True, "duplicate": duplicate,
                                "image": items[row.id]})
        status = 201 if any(r["ok"] for r in results) else 422
        return JSONResponse({"results": results}, status_code=status)


async def upload_images(request: Request) -> Response:
    project_id = path_id(request, "project_id")
    form, limit = await _read_form(request, project_id)
    store = image_store(request)
    staged: list[Staged] = []
    try:
        labels = parse_labels(_text(form.get("labels")))
        uploads = form.getlist("files")
        if not uploads:
            raise invalid("send one or more files in multipart fields named 'files'")
        for upload in uploads:
            if not isinstance(upload, UploadFile):
                staged.append(Staged("", error=ImageRejected("not_a_file", "the field is not a file")))
                continue
            entry = await run_in_threadpool(stage_stream, store, clean_name(upload.filename),
                                            upload.file, limit)
            entry.labels = labels
            staged.append(entry)
        return await _save(request, project_id, staged)
    finally:
        await run_in_threadpool(discard_all, store, staged)
        await form.close()


async def upload_zip(request: Request) -> Response:
    project_id = path_id(request, "project_id")
    form, limit = await _read_form(request, project_id)
    store = image_store(request)
    staged: list[Staged] = []
    try:
        labels = parse_labels(_text(form.get("labels")))
        folders = _flag(_text(form.get("labels_from_folders")), "labels_from_folders")
        files = form.getlist("file")
        if len(files) != 1 or not isinstance(files[0], UploadFile):
            raise invalid("send exactly one ZIP archive in a multipart field named 'file'")
        staged = await run_in_threadpool(stage_zip, store, files[0].file, limit * UNZIP_FACTOR,
                                         limit, folders, labels)
        if not staged:
            raise invalid("the ZIP holds no files")
        return await _save(request, project_id, staged)
    finally:
        await run_in_threadpool(discard_all, store, staged)
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
        return JSONResponse({"total": total, "offset": offset, "limit": limit, "images": items})


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
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    path = store.thumb_path(sha) if thumb else store.path(sha)
    if not path.is_file():
        raise not_found("image file")
    if thumb:
        return FileResponse(path, media_type=THUMB_MIME, headers=headers)
    return FileResponse(path, media_type=mime, headers=headers, filename=name.rsplit("/", 1)[-1],
                        content_disposition_type="inline")


async def image_file(request: Request) -> Response:
    return await _bytes(request, thumb=False)


async def image_thumbnail(request: Request) -> Response:
    return await _bytes(request, thumb=True)


async def delete_image(request: Request) -> Response:
    image_id = path_id(request, "image_id")
    store = image_store(request)
    async with unit_of_work(request) as (session, user):
        image = await image_access(session, user, image_id, Privilege.DELETE)
        await remove_image(session, store, image)
        return Response(status_code=204)


async def remove_image(session: AsyncSession, store: ImageStore, image: Image) -> None:
    """Delete an image row with its labels; its file too when no other image shares the bytes."""
    sha = image.sha256
    await _lock_sha(session, sha)
    await session.delete(image)
    await session.flush()
    others = (await session.execute(
        select(func.count()).select_from(Image).where(Image.sha256 == sha))).scalar_one()
    if others == 0:
        # Inside the transaction (and the sha lock) so a concurrent upload cannot lose its file.
        await forget_content(session, sha)
        await run_in_threadpool(store.remove, sha)


async def smart_select(request: Request) -> Response:
    image_id = path_id(request, "image_id")
    body = await _smart.read_request(
        request, lambda session, user: image_access(session, user, image_id, Privilege.LABEL))
    async with unit_of_work(request) as (session, user):
        image = await image_access(session, user, image_id, Privilege.LABEL)
        sha, width, height = image.sha256, image.width, image.height
    result = await _smart.run(image_store(request), sha, width, height, body)
    return JSONResponse(result)


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
