"""Everything an edit message needs to know before it touches anything — in one statement.

The sender's account (active? admin?), their privileges and settings layers in the project, the
image, and whether this ``client_op_id`` already landed. Reading them with one round trip instead
of six is most of what keeps an op's commit short (see docs/performance.md, "Hub").
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.edits import ImageRef
from server.models import Image, Membership, OpLogEntry, Project, User
from server.permissions import Actor
from server.preferences import USER_KEYS, LabelingSettings, merge


@dataclass(frozen=True)
class OpContext:
    image: ImageRef | None  # None: no such image
    active: bool
    actor: Actor
    settings: LabelingSettings
    duplicate_seq: int | None


class SettingsCache:
    """Merged settings by their stored layers: merging validates every key, which is not free."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._cache: OrderedDict[str, LabelingSettings] = OrderedDict()

    def merged(self, *layers: dict[str, Any] | None) -> LabelingSettings:
        key = json.dumps(layers, sort_keys=True, default=str)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        value = self._cache[key] = merge(*layers)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return value


def _user_keys(layer: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (layer or {}).items() if k in USER_KEYS}


async def load(session: AsyncSession, *, user_id: int, project_id: int, image_id: int,
               client_op_id: str | None, cache: SettingsCache) -> OpContext | None:
    """``None`` when the user no longer exists."""
    duplicate = (select(OpLogEntry.seq).where(OpLogEntry.user_id == user_id,
                                              OpLogEntry.client_op_id == client_op_id)
                 .scalar_subquery() if client_op_id is not None else None)
    image = (select(Image.id, Image.project_id, Image.width, Image.height, Image.object_count)
             .where(Image.id == image_id, Image.project_id == project_id).subquery())
    columns: list[Any] = [User.is_active, User.is_admin, User.settings.label("user_settings"),
                          Membership.privileges, Membership.settings.label("member_settings"),
                          Project.settings.label("project_settings"),
                          image.c.id.label("image_id"), image.c.width, image.c.height,
                          image.c.object_count]
    if duplicate is not None:
        columns.append(duplicate.label("duplicate_seq"))
    row = (await session.execute(
        select(*columns).select_from(User)
        .join(Project, Project.id == project_id)
        .outerjoin(Membership, and_(Membership.project_id == project_id, Membership.user_id == user_id))
        .outerjoin(image, image.c.id == image_id)
        .where(User.id == user_id))).first()
    if row is None:
        return None
    ref = (ImageRef(row.image_id, project_id, row.width, row.height, row.object_count)
           if row.image_id is not None else None)
    settings = cache.merged(row.project_settings, _user_keys(row.user_settings),
                            _user_keys(row.member_settings))
    return OpContext(image=ref, active=bool(row.is_active),
                     actor=Actor(user_id=user_id, is_admin=bool(row.is_admin), privileges=row.privileges),
                     settings=settings,
                     duplicate_seq=getattr(row, "duplicate_seq", None))
