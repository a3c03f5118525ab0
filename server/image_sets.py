"""A request's images: the ids it names (all of the project's) or what its filter matches, and
which of them someone else is labeling right now. Shared by every bulk action (labels from a
model, predictions, suggestions, deleting many images)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server._web import parse_as
from server.errors import ApiError, invalid
from server.image_query import ImageFilter, apply_filter
from server.models import Image, ImageLock, utcnow

__all__ = ["MAX_IMAGES", "locked_by_others", "project_images", "target_images"]

MAX_IMAGES = 10_000  # per request: suggestions, predictions and adding them


async def project_images(session: AsyncSession, project_id: int, wanted: list[int]) -> list[int]:
    """The ids, in the given order without repeats, all of this project (404 naming the others)."""
    found: list[int] = []
    unique = sorted(set(wanted))
    for start in range(0, len(unique), 500):
        found += (await session.execute(select(Image.id).where(
            Image.project_id == project_id, Image.id.in_(unique[start : start + 500])))).scalars().all()
    missing = sorted(set(unique) - set(found))
    if missing:
        raise ApiError(404, "not_found", f"{len(missing)} image(s) not in this project",
                       {"image_ids": missing[:100]})
    return list(dict.fromkeys(wanted))


async def target_images(session: AsyncSession, project_id: int, images: list[int] | None,
                        filter: dict[str, Any] | None, *, limit: int | None = MAX_IMAGES,
                        ids_field: str = "images") -> list[int]:
    """A request's images: either the ids given (``ids_field`` names them in the request) or
    those its filter matches, at most ``limit`` (else a clear error; ``None``: all of them)."""
    if (images is None) == (filter is None):
        raise invalid(f"give either {ids_field} or filter")
    if images is not None:
        return await project_images(session, project_id, images)
    flt = parse_as(ImageFilter, filter)
    stmt = apply_filter(select(Image.id).where(Image.project_id == project_id), flt).order_by(Image.id)
    if limit is None:
        return list((await session.execute(stmt)).scalars())
    ids = list((await session.execute(stmt.limit(limit + 1))).scalars())
    if len(ids) > limit:
        raise invalid(f"the filter matches more than {limit} images; narrow it")
    return ids


async def locked_by_others(session: AsyncSession, ids: Sequence[int], user_id: int) -> set[int]:
    now = utcnow()
    out: set[int] = set()
    for start in range(0, len(ids), 500):
        out.update((await session.execute(select(ImageLock.image_id).where(
            ImageLock.image_id.in_(ids[start : start + 500]), ImageLock.holder_id.is_not(None),
            ImageLock.holder_id != user_id, ImageLock.expires_at > now))).scalars())
    return out
