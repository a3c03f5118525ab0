"""Everything an edit message needs to know before it touches anything — in one statement.

The sender's account (active? admin?), their privileges and settings layers in the project, the
image, and whether this ``client_op_id`` already landed. Reading them with one round trip instead
of six is most of what keeps an op's commit short (see docs/performance.md, "Hub").
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import String, and_, bindparam, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from server._edit_lease import LEASE_AND_SPAN
from server.db import run
from server.edits import ImageRef
from server.models import Image, Membership, OpLogEntry, Project, User
from server.permissions import Actor
from server.preferences import LabelingSettings, merge_layers


@dataclass(frozen=True)
class OpContext:
    image: ImageRef | None  # None: no such image
    active: bool
    actor: Actor
    settings: LabelingSettings
    duplicate_seq: int | None
    lease: Any  # the lease and open labeling session (``server._edit_lease.check_lease``)


class SettingsCache:
    """Merged settings by their stored layers: merging validates every key, which is not free."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._cache: OrderedDict[str, LabelingSettings] = OrderedDict()

    def merged(self, project: dict[str, Any] | None, user: dict[str, Any] | None,
               member: dict[str, Any] | None) -> LabelingSettings:
        key = json.dumps([project, user, member], sort_keys=True, default=str)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        value = self._cache[key] = merge_layers(project, user, member)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return value


_USER: Any = bindparam("user_id")
_PROJECT: Any = bindparam("project_id")
_IMAGE: Any = bindparam("image_id")
# Built once (building a statement costs more CPU than running it); a NULL client_op_id matches
# nothing, so undo and redo use the same statement.
# The image's lease is read FOR UPDATE here too (a locking CTE), so the fencing-token check
# needs no statement of its own.
_LEASE = LEASE_AND_SPAN.cte("lease")
_CONTEXT = (
    select(User.is_active, User.is_admin, User.settings.label("user_settings"),
           Membership.privileges, Membership.settings.label("member_settings"),
           Project.settings.label("project_settings"),
           Image.id.label("image_id"), Image.width, Image.height, Image.object_count,
           Image.labeled_by, Image.labeled_at,
           select(OpLogEntry.seq).where(OpLogEntry.user_id == _USER,
                                        OpLogEntry.client_op_id == bindparam("client_op_id"))
           .scalar_subquery().label("duplicate_seq"),
           *_LEASE.c)
    .select_from(User)
    .join(Project, Project.id == _PROJECT)
    .outerjoin(Membership, and_(Membership.project_id == _PROJECT, Membership.user_id == _USER))
    .outerjoin(Image, and_(Image.id == _IMAGE, Image.project_id == _PROJECT))
    .outerjoin(_LEASE, true())
    .where(User.id == _USER))


async def load(session: AsyncSession, *, user_id: int, project_id: int, image_id: int,
               client_op_id: str | None, cache: SettingsCache) -> OpContext | None:
    """``None`` when the user no longer exists."""
    row = (await run(session, _CONTEXT, {"user_id": user_id, "project_id": project_id,
                                            "image_id": image_id,
                                            "client_op_id": client_op_id})).first()
    if row is None:
        return None
    return to_context(row, user_id, project_id, cache)


class ObjectRow(NamedTuple):
    """An object's stored columns, as ``server._object_store.load_objects`` returns them."""

    id: str
    type: str
    label: str
    geometry: Any
    keypoints: Any
    attributes: Any
    rpy: Any
    occluded: bool
    z: int
    source: str
    version: int


@dataclass(frozen=True)
class BegunOp:
    context: OpContext
    seq: int | None  # taken only when the op can go ahead (see the function's migration)
    objects: dict[str, ObjectRow]


# PostgreSQL only (migrations/versions/0002): lease lock, context, seq and objects in one call. The
# transaction path of an object op: taken when the two-statement path (server/hub/_fast_op.py)
# cannot be (label sync to do, rasterize_all, or something changed between its statements).
# The ids go as JSON text: an array parameter would make asyncpg introspect its type on every
# new pooled connection (~10-20 ms each, measured).
_BEGIN_OP = text(
    "SELECT * FROM labelhub_op_begin(:user_id, :project_id, :image_id, :client_op_id, "
    "CASE WHEN CAST(:ids AS text) IS NULL THEN NULL ELSE CAST(ARRAY("
    "SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))) AS varchar[]) END)"
).bindparams(bindparam("ids", type_=String()))


async def begin_op(session: AsyncSession, *, user_id: int, project_id: int, image_id: int,
                   client_op_id: str | None, object_ids: set[str] | None,
                   cache: SettingsCache) -> BegunOp | None:
    """What :func:`load` reads, plus — when the op can go ahead — the project's next seq (the
    project row locked) and the objects ``object_ids`` names (all of them for ``None``), read
    after that lock. ``None`` when the user no longer exists. On PostgreSQL only."""
    rows = (await run(session, _BEGIN_OP, {
        "user_id": user_id, "project_id": project_id, "image_id": image_id,
        "client_op_id": client_op_id,
        "ids": None if object_ids is None else json.dumps(sorted(object_ids))})).all()
    if not rows:
        return None
    first = rows[0]
    objects = {r.o_id: ObjectRow(r.o_id, r.o_type, r.o_label, r.o_geometry, r.o_keypoints,
                                 r.o_attributes, r.o_rpy, r.o_occluded, r.o_z, r.o_source,
                                 r.o_version)
               for r in rows if r.o_id is not None}
    return BegunOp(to_context(first, user_id, project_id, cache), first.seq, objects)


def to_context(row: Any, user_id: int, project_id: int, cache: SettingsCache) -> OpContext:
    ref = (ImageRef(row.image_id, project_id, row.width, row.height, row.object_count,
                    row.labeled_by, row.labeled_at)
           if row.image_id is not None else None)
    settings = cache.merged(row.project_settings, row.user_settings, row.member_settings)
    return OpContext(image=ref, active=bool(row.is_active),
                     actor=Actor(user_id=user_id, is_admin=bool(row.is_admin), privileges=row.privileges),
                     settings=settings, duplicate_seq=row.duplicate_seq, lease=row)
