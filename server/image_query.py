"""Which images: the one filter (list, the hub's next image, export) and the item shape on the wire.

``image_filter_query(project_id, flt)`` builds the ``SELECT`` every feature shares;
``image_items(session, images)`` turns a page of rows into items with two extra queries in all
(labels, locks), never one per image.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import (
    Image,
    ImageAssignment,
    ImageLabel,
    ImageLock,
    LabelDef,
    LabelObjectRow,
    User,
    utcnow,
)
from server.workflow import State

DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]  # a 32-bit id column
Sort = Literal["name", "-name", "uploaded_at", "-uploaded_at", "id", "-id"]
_SORT_COLUMNS = {"name": Image.name, "uploaded_at": Image.uploaded_at, "id": Image.id}


class ImageFilter(BaseModel):
    """The current filter; ``None`` means "do not filter on this"."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    labeled: bool | None = None
    label: str | None = Field(default=None, min_length=1, max_length=200)
    object_label: str | None = Field(default=None, min_length=1, max_length=200)
    uploaded_by: DbId | None = None
    auto_labeled: bool | None = None
    labeled_by: DbId | None = None
    locked: bool | None = None
    ids: list[DbId] | None = Field(default=None, max_length=10_000)
    #: Workflow states, any of (``done,accepted`` in a query string).
    state: list[State] | None = Field(default=None, min_length=1, max_length=5)
    assignee: DbId | None = None
    assigned: bool | None = None
    sort: Sort = "id"

    @field_validator("ids", "state", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        # "1,2,3" from a query string, or a JSON list from a message.
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("label", "object_label")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        # PostgreSQL refuses NUL in text; no label name holds control characters anyway.
        if value is not None and any(ch < " " or ch == "\x7f" for ch in value):
            raise ValueError("must not contain control characters")
        return value

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> dict[str, Any]:
        """The raw values of the filter's own keys, to validate with ``parse_as``."""
        return {k: v for k, v in params.items() if k in cls.model_fields and v != ""}


def _has_labels() -> Any:
    return exists().where(ImageLabel.image_id == Image.id)


def _locked_now(now: datetime) -> Any:
    return exists().where(ImageLock.image_id == Image.id, ImageLock.holder_id.is_not(None),
                          ImageLock.expires_at > now)


def apply_filter(stmt: Select[Any], flt: ImageFilter, now: datetime | None = None) -> Select[Any]:
    """Add the filter's conditions (not the order) to a statement selecting from ``Image``."""
    if flt.labeled is not None:
        labeled = or_(Image.object_count > 0, _has_labels())
        stmt = stmt.where(labeled if flt.labeled else ~labeled)
    if flt.label is not None:
        stmt = stmt.where(exists().where(
            ImageLabel.image_id == Image.id, ImageLabel.label_id == LabelDef.id,
            LabelDef.name == flt.label))
    if flt.object_label is not None:
        stmt = stmt.where(exists().where(LabelObjectRow.image_id == Image.id,
                                         LabelObjectRow.label == flt.object_label))
    if flt.uploaded_by is not None:
        stmt = stmt.where(Image.uploaded_by == flt.uploaded_by)
    if flt.auto_labeled is not None:
        stmt = stmt.where(Image.auto_labeled.is_(flt.auto_labeled))
    if flt.labeled_by is not None:
        uid = flt.labeled_by
        # Who labeled: the last labeler recorded on the image, or anyone who made or changed an
        # object or applied a classification label on it.
        stmt = stmt.where(or_(
            Image.labeled_by == uid,
            exists().where(LabelObjectRow.image_id == Image.id,
                           or_(LabelObjectRow.created_by == uid, LabelObjectRow.updated_by == uid)),
            exists().where(ImageLabel.image_id == Image.id, ImageLabel.created_by == uid),
        ))
    if flt.locked is not None:
        locked = _locked_now(now or utcnow())
        stmt = stmt.where(locked if flt.locked else ~locked)
    if flt.ids is not None:
        stmt = stmt.where(Image.id.in_(flt.ids))
    if flt.state is not None:
        stmt = stmt.where(Image.state.in_([s.value for s in flt.state]))
    if flt.assignee is not None:
        stmt = stmt.where(exists().where(ImageAssignment.image_id == Image.id,
                                         ImageAssignment.user_id == flt.assignee))
    if flt.assigned is not None:
        assigned = exists().where(ImageAssignment.image_id == Image.id)
        stmt = stmt.where(assigned if flt.assigned else ~assigned)
    return stmt


def order_by(stmt: Select[Any], sort: str) -> Select[Any]:
    """Order by the sort key, then by id so pages never overlap."""
    desc = sort.startswith("-")
    column = _SORT_COLUMNS[sort.lstrip("-")]
    primary = column.desc() if desc else column.asc()
    if column is Image.id:
        return stmt.order_by(primary)
    return stmt.order_by(primary, Image.id.desc() if desc else Image.id.asc())


def image_filter_query(project_id: int, flt: ImageFilter, now: datetime | None = None) -> Select[Any]:
    """``SELECT images`` of one project matching the filter, in the filter's order."""
    stmt = select(Image).where(Image.project_id == project_id)
    return order_by(apply_filter(stmt, flt, now), flt.sort)


# --- the item shape -----------------------------------------------------------------------

class LabelOut(BaseModel):
    name: str
    color: str
    is_default: bool
    source: str


class HolderOut(BaseModel):
    id: int
    name: str


class LockOut(BaseModel):
    holder: HolderOut
    expires_at: datetime


class ReviewOut(BaseModel):
    """The last review: who, and the comment the labeler reads."""

    by: HolderOut | None
    comment: str | None


class ImageOut(BaseModel):
    id: int
    project_id: int
    name: str
    width: int
    height: int
    mime: str
    size_bytes: int
    sha256: str
    uploaded_at: datetime
    uploaded_by: int | None
    auto_labeled: bool
    object_count: int
    labeled: bool
    labels: list[LabelOut]
    lock: LockOut | None
    state: State
    state_at: datetime | None
    done_by: HolderOut | None
    review: ReviewOut | None
    assignee: HolderOut | None
    thumbnail_url: str
    file_url: str


#: Items built between two yields to the event loop: ~1.5 ms of model building, so an upload's
#: answer of hundreds of items (or a page of 500) does not hold the hub's edits for tens of ms
#: (docs/performance.md, "Hub": edit -> peer latency while another client uploads).
ITEMS_PER_STEP = 40


async def image_items(session: AsyncSession, images: Sequence[Image],
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """Wire items for a page of images: labels and locks come from one query each."""
    ids = [img.id for img in images]
    labels: dict[int, list[LabelOut]] = defaultdict(list)
    locks: dict[int, LockOut] = {}
    assignees: dict[int, int] = {}
    if ids:
        rows = await session.execute(
            select(ImageLabel.image_id, LabelDef.name, LabelDef.color, ImageLabel.is_default,
                   ImageLabel.source)
            .join(LabelDef, LabelDef.id == ImageLabel.label_id)
            .where(ImageLabel.image_id.in_(ids))
            .order_by(ImageLabel.image_id, ImageLabel.created_at, ImageLabel.label_id)
        )
        for image_id, name, color, is_default, source in rows:
            labels[image_id].append(LabelOut(name=name, color=color, is_default=is_default,
                                             source=source))
        lock_rows = await session.execute(
            select(ImageLock.image_id, ImageLock.expires_at, User.id, User.name)
            .join(User, User.id == ImageLock.holder_id)
            .where(ImageLock.image_id.in_(ids), ImageLock.expires_at > (now or utcnow()))
        )
        for image_id, expires_at, uid, uname in lock_rows:
            assert expires_at is not None  # the query compares it with now
            locks[image_id] = LockOut(holder=HolderOut(id=uid, name=uname),
                                      expires_at=expires_at)
        assignees = dict((await session.execute(
            select(ImageAssignment.image_id, ImageAssignment.user_id)
            .where(ImageAssignment.image_id.in_(ids)))).all())
    people = await _people(session, {*assignees.values(),
                                     *(i.done_by for i in images if i.done_by is not None),
                                     *(i.reviewed_by for i in images if i.reviewed_by is not None)})

    def person(user_id: int | None) -> HolderOut | None:
        return HolderOut(id=user_id, name=people.get(user_id, f"user {user_id}")) \
            if user_id is not None else None

    items: list[dict[str, Any]] = []
    for start in range(0, len(images), ITEMS_PER_STEP):
        if start:
            await asyncio.sleep(0)  # let the hub's edits through between steps
        items += [
            ImageOut(
                id=img.id, project_id=img.project_id, name=img.name, width=img.width,
                height=img.height, mime=img.mime, size_bytes=img.size_bytes, sha256=img.sha256,
                uploaded_at=img.uploaded_at, uploaded_by=img.uploaded_by,
                auto_labeled=img.auto_labeled, object_count=img.object_count,
                labeled=img.object_count > 0 or bool(labels.get(img.id)),
                labels=labels.get(img.id, []), lock=locks.get(img.id),
                state=State(img.state), state_at=img.state_at, done_by=person(img.done_by),
                review=ReviewOut(by=person(img.reviewed_by), comment=img.review_comment)
                if img.reviewed_by is not None or img.review_comment else None,
                assignee=person(assignees.get(img.id)),
                thumbnail_url=f"/api/v1/images/{img.id}/thumbnail",
                file_url=f"/api/v1/images/{img.id}/file",
            ).model_dump(mode="json")
            for img in images[start:start + ITEMS_PER_STEP]
        ]
    return items


async def _people(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict((await session.execute(
        select(User.id, User.name).where(User.id.in_(ids)))).all())


__all__ = ["ImageFilter", "ImageOut", "apply_filter", "image_filter_query", "image_items",
           "order_by"]
