"""Routes for label definitions, bulk classification, starring and label synchronization.

Privileges: listing needs ``view``; creating a label, applying/removing/starring labels on
images and label sync need ``label``; renaming, recoloring, shortcuts and deleting need
``manage_labels``. Every change to images goes through the op log (``server/_oplog.py``) so
live clients see it.

Every route that writes label state locks the project row first (``project_access(...,
lock=True)``), so writers of one project's labels take turns: a bulk op reads the images'
states and writes the new ones, and two doing that at once would lose each other's labels.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import _label_store as store
from server._oplog import PendingOp, append_ops
from server._web import needs, path_int, project_access, read_body, unit_of_work
from server.classification import (
    ClassificationError,
    LabelOp,
    RemoveLabel,
    SetDefaultLabel,
    apply_label_op,
    normalize_label,
    parse_label_op,
    sync_label_ops,
)
from server.errors import ApiError, invalid, not_found
from server.image_sets import target_images
from server.models import ImageLabel, LabelDef, LabelObjectRow
from server.permissions import Privilege

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_BULK_KINDS = {"add_label", "remove_label", "set_default_label"}


def _name(value: str) -> str:
    try:
        return normalize_label(value, "name")
    except ClassificationError as exc:
        raise ValueError(exc.message) from None


def _color(value: str | None) -> str | None:
    if value is not None and not _COLOR.match(value):
        raise ValueError("must be a color like #12ab9f")
    return value.lower() if value else value


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    color: str | None = None
    shortcut: int | None = Field(default=None, ge=1, le=9)

    _n = field_validator("name")(_name)
    _c = field_validator("color")(_color)


class LabelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    color: str | None = None
    shortcut: int | None = Field(default=None, ge=0, le=9)  # 0 clears the shortcut

    @field_validator("name")
    @classmethod
    def _n(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)

    _c = field_validator("color")(_color)


class ApplyIn(BaseModel):
    """A classification op applied to a list of images, or to the images of a filter."""

    model_config = ConfigDict(extra="forbid")
    op: dict[str, Any]
    image_ids: list[int] | None = Field(default=None, max_length=100_000)
    filter: dict[str, Any] | None = None


async def _label_out(session: AsyncSession, rows: list[LabelDef]) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    counts: dict[int, int] = {}
    objects: dict[str, int] = {}
    if ids:
        counts = dict((await session.execute(
            select(ImageLabel.label_id, func.count()).where(ImageLabel.label_id.in_(ids))
            .group_by(ImageLabel.label_id))).all())
        objects = dict((await session.execute(
            select(LabelObjectRow.label, func.count())
            .where(LabelObjectRow.project_id == rows[0].project_id,
                   LabelObjectRow.label.in_([r.name for r in rows]))
            .group_by(LabelObjectRow.label))).all())
    return [{"id": r.id, "name": r.name, "color": r.color, "shortcut": r.shortcut,
             "image_count": counts.get(r.id, 0), "object_count": objects.get(r.name, 0)}
            for r in rows]


async def _get_label(session: AsyncSession, project_id: int, label_id: int) -> LabelDef:
    row = await session.get(LabelDef, label_id)
    if row is None or row.project_id != project_id:
        raise not_found("label")
    return row


async def _take_shortcut(session: AsyncSession, project_id: int, digit: int) -> None:
    await session.execute(update(LabelDef).where(LabelDef.project_id == project_id,
                                                 LabelDef.shortcut == digit).values(shortcut=None))


async def _adopt_object_labels(session: AsyncSession, project_id: int) -> None:
    """Give a definition (palette color) to object labels that have none yet: objects drawn in
    the tool or imported name labels freely, and the vocabulary must list them so that they can
    be renamed, recolored, deleted and given a shortcut."""
    missing = list((await session.execute(
        select(LabelObjectRow.label).distinct().where(
            LabelObjectRow.project_id == project_id, LabelObjectRow.label != "",
            ~exists().where(LabelDef.project_id == project_id, LabelDef.name == LabelObjectRow.label))
    )).scalars())
    if missing:
        await store.ensure_label_defs(session, project_id, missing)


async def list_labels(request: Request) -> Response:
    """All labels of the project, classification and object labels alike (the suggestions of
    upload dialogs); ``?q=`` filters by prefix."""
    project_id = path_int(request, "project_id")
    prefix = request.query_params.get("q", "").strip()
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.VIEW)
        await _adopt_object_labels(session, project_id)
        stmt = select(LabelDef).where(LabelDef.project_id == project_id)
        if prefix:
            stmt = stmt.where(LabelDef.name.startswith(prefix, autoescape=True))
        rows = list((await session.execute(stmt.order_by(LabelDef.name))).scalars())
        return JSONResponse({"labels": await _label_out(session, rows)})


async def create_label(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, LabelIn, needs(project_id, Privilege.LABEL))
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.LABEL)
        if await store.label_ids(session, project_id, [body.name]):
            raise ApiError(409, "exists", f"label {body.name!r} already exists")
        if body.shortcut is not None:
            await _take_shortcut(session, project_id, body.shortcut)
        ids = await store.ensure_label_defs(session, project_id, [body.name])
        row = await _get_label(session, project_id, ids[body.name])
        if body.color:
            row.color = body.color
        row.shortcut = body.shortcut
        await session.flush()
        return JSONResponse((await _label_out(session, [row]))[0], status_code=201)


async def patch_label(request: Request) -> Response:
    """Rename (carried to every object with that name, in the same transaction), recolor, shortcut."""
    project_id, label_id = path_int(request, "project_id"), path_int(request, "label_id")
    body = await read_body(request, LabelPatch, needs(project_id, Privilege.MANAGE_LABELS))
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_LABELS, lock=True)
        row = await _get_label(session, project_id, label_id)
        if body.name is not None and body.name != row.name:
            if await store.label_ids(session, project_id, [body.name]):
                raise ApiError(409, "exists", f"label {body.name!r} already exists")
            old = row.name
            await session.execute(update(LabelObjectRow).where(
                LabelObjectRow.project_id == project_id, LabelObjectRow.label == old
            ).values(label=body.name))
            row.name = body.name
            op = {"kind": "rename_label", "from": old, "to": body.name}
            inverse = {"kind": "rename_label", "from": body.name, "to": old}
            await append_ops(session, project_id, user.id, [PendingOp(None, "rename_label", op, inverse)], "rest")
        if body.color is not None:
            row.color = body.color
        if body.shortcut is not None:
            await _take_shortcut(session, project_id, body.shortcut)
            row.shortcut = body.shortcut or None
        await session.flush()
        return JSONResponse((await _label_out(session, [row]))[0])


async def delete_label(request: Request) -> Response:
    """Remove the label from every image (defaults promoted by the usual rule) and clear it from
    objects that carry it (the objects stay, with an empty label)."""
    project_id, label_id = path_int(request, "project_id"), path_int(request, "label_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.MANAGE_LABELS, lock=True)
        row = await _get_label(session, project_id, label_id)
        image_ids = list((await session.execute(
            select(ImageLabel.image_id).where(ImageLabel.label_id == row.id))).scalars())
        await apply_bulk(session, project_id, user.id, RemoveLabel(row.name), image_ids, "rest")
        result: Any = await session.execute(update(LabelObjectRow).where(
            LabelObjectRow.project_id == project_id, LabelObjectRow.label == row.name
        ).values(label=""))
        cleared = int(result.rowcount)
        op = {"kind": "delete_label", "label": row.name}
        await append_ops(session, project_id, user.id, [PendingOp(None, "delete_label", op, None)], "rest")
        await session.delete(row)
        return JSONResponse({"deleted": row.name, "images": len(image_ids), "objects_cleared": cleared})


async def apply_bulk(
    session: AsyncSession, project_id: int, user_id: int | None, op: LabelOp,
    image_ids: list[int], origin: str,
) -> tuple[int, int | None]:
    """Apply one classification op to many images: ``(images changed, last seq)``."""
    changed: dict[int, Any] = {}
    pending: list[PendingOp] = []
    for start in range(0, len(image_ids), 5_000):
        states = await store.read_labels(session, image_ids[start : start + 5_000])
        for image_id, state in states.items():
            new, inverse = apply_label_op(state, op, user_id)
            if inverse is not None:
                changed[image_id] = new
                pending.append(PendingOp(image_id, op.kind, op.to_dict(), inverse.to_dict()))
    await store.write_labels(session, project_id, changed)
    last = await append_ops(session, project_id, user_id, pending, origin)
    return len(changed), last


async def _target_images(session: AsyncSession, project_id: int, body: ApplyIn) -> list[int]:
    return sorted(await target_images(session, project_id, body.image_ids, body.filter,
                                      limit=None, ids_field="image_ids"))


async def apply_labels(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, ApplyIn, needs(project_id, Privilege.LABEL))
    try:
        op = parse_label_op(body.op)
    except ClassificationError as exc:
        raise invalid(str(exc), [exc.to_dict()]) from None
    if op.kind not in _BULK_KINDS:
        raise invalid(f"op.kind: one of {', '.join(sorted(_BULK_KINDS))}")
    async with unit_of_work(request) as (session, user):
        # The project row lock first, as every writer of label state here does: two bulk ops
        # reading the same images concurrently would each drop the other's labels (PostgreSQL).
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        ids = await _target_images(session, project_id, body)
        changed, last = await apply_bulk(session, project_id, user.id, op, ids, "rest")
        return JSONResponse({"images": len(ids), "changed": changed, "seq": last})


async def star_label(request: Request) -> Response:
    """Make the label the default on every image that has it."""
    project_id, label_id = path_int(request, "project_id"), path_int(request, "label_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        row = await _get_label(session, project_id, label_id)
        ids = list((await session.execute(select(ImageLabel.image_id).where(
            ImageLabel.label_id == row.id, ImageLabel.is_default.is_(False)).order_by(ImageLabel.image_id))).scalars())
        changed, last = await apply_bulk(session, project_id, user.id, SetDefaultLabel(row.name), ids, "rest")
        return JSONResponse({"images": changed, "changed": changed, "seq": last})


async def sync_labels(request: Request) -> Response:
    """Retroactive label sync: every object label becomes a classification label of its image
    (source ``sync``); idempotent."""
    project_id = path_int(request, "project_id")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.LABEL, lock=True)
        changed, last = await sync_project(session, project_id, user.id)
        return JSONResponse({"changed": changed, "seq": last})


async def sync_project(session: AsyncSession, project_id: int, user_id: int | None) -> tuple[int, int | None]:
    pairs = (await session.execute(
        select(LabelObjectRow.image_id, LabelObjectRow.label).where(
            LabelObjectRow.project_id == project_id, LabelObjectRow.label != "")
        .distinct().order_by(LabelObjectRow.image_id, LabelObjectRow.label))).all()
    wanted: dict[int, list[str]] = {}
    for image_id, label in pairs:
        wanted.setdefault(image_id, []).append(label)
    states = await store.read_labels(session, list(wanted))
    changed: dict[int, Any] = {}
    pending: list[PendingOp] = []
    for image_id, labels in wanted.items():
        state = states[image_id]
        for label in labels:
            for op in sync_label_ops(label, state):
                state, inverse = apply_label_op(state, op, user_id)
                if inverse is not None:
                    pending.append(PendingOp(image_id, op.kind, op.to_dict(), inverse.to_dict()))
                    changed[image_id] = state
    await store.write_labels(session, project_id, changed)
    return len(changed), await append_ops(session, project_id, user_id, pending, "rest")


routes = [
    Route("/api/v1/projects/{project_id}/labels", list_labels, methods=["GET"]),
    Route("/api/v1/projects/{project_id}/labels", create_label, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/labels/apply", apply_labels, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/labels/sync", sync_labels, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/labels/{label_id}", patch_label, methods=["PATCH"]),
    Route("/api/v1/projects/{project_id}/labels/{label_id}", delete_label, methods=["DELETE"]),
    Route("/api/v1/projects/{project_id}/labels/{label_id}/star", star_label, methods=["POST"]),
]
