"""Image workflow changes and assignments applied to the database, and their REST routes.

The rules are ``server.workflow`` (pure). A change takes the image's lease row first when it
needs the lock, then the op's seq — which locks the project row, the order every op writer
follows — then reads the image's state, asks the rules and writes the new state with its op-log
row (kind ``state``, origin ``state``) in the caller's transaction. Of two concurrent changes
from one state the second reads the first one's result and is refused (``conflict``), so the log
holds exactly one. A refusal raises before anything is written; the transaction rolls back,
its reserved seq with it.

Socket: ``set_state`` (``server/hub/handlers.py``). REST: ``POST /api/v1/images/{id}/state``
and ``POST /api/v1/projects/{id}/assignments`` (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server import workflow
from server._edit_lease import LEASE_AND_SPAN, check_lease, touch
from server._oplog import reserve_seqs
from server._web import (
    actor_for,
    needs,
    parse_as,
    path_int,
    project_access,
    read_body,
    unit_of_work,
)
from server.edits import EditError, append
from server.errors import ApiError, not_found
from server.image_query import DbId, ImageFilter, apply_filter
from server.models import Image, ImageAssignment, Membership, User, utcnow
from server.permissions import Actor, Privilege, allowed
from server.workflow import State

_STATUS = {"forbidden": 403, "not_found": 404, "conflict": 409, "lock_required": 409,
           "invalid": 422}
MAX_ASSIGN = 10_000


class StateError(Exception):
    """A refused state change or assignment; nothing was written. ``code`` is on the wire."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def api(self) -> ApiError:
        return ApiError(_STATUS.get(self.code, 422), self.code, self.message)


@dataclass(frozen=True)
class Changed:
    seq: int
    state: State
    op: dict[str, Any]


async def change_state(session: AsyncSession, *, project_id: int, image_id: int, actor: Actor,
                       action: str, comment: str | None, token: int | None, now: datetime,
                       idle_limit: float, expect: State | None = None) -> Changed:
    """Apply ``action`` (``done``, ``accept``, ``reject``, ``reopen``) to the image.

    ``token``: the lease token the labeler holds (``done`` needs it); ``expect``: the state the
    asker saw (another one is a conflict). Raises :class:`StateError`.
    """
    span = None
    holds_lock = False
    if action == "done" and token is not None:
        lease = (await session.execute(LEASE_AND_SPAN, {"image_id": image_id})).first()
        try:
            span = check_lease(lease, actor.user_id, token, now)
            holds_lock = True
        except EditError:
            holds_lock = False  # reported as lock_required by the rules, after the privilege
    seq = await reserve_seqs(session, project_id, 1)
    image = (await session.execute(
        select(Image).where(Image.id == image_id, Image.project_id == project_id)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()
    if image is None:
        raise StateError("not_found", f"no image {image_id} in this project")
    decision = workflow.decide(State(image.state), action, actor, holds_lock=holds_lock,
                               comment=comment, expected=expect)
    if isinstance(decision, workflow.Refused):
        raise StateError(decision.code, decision.message)
    entry = workflow.op(decision, action, comment)
    image.state, image.state_at = decision.after.value, now
    if action == "done":
        image.done_by = actor.user_id
    elif action in ("accept", "reject"):
        image.reviewed_by, image.review_comment = actor.user_id, comment or None
    elif comment:  # a manager's reason to reopen is what the labeler reads next
        image.review_comment = comment
    await append(session, project_id=project_id, image_id=image_id, user_id=actor.user_id,
                 kind="state", op=entry, inverse=None, client_op_id=None, origin="state", seq=seq)
    await touch(session, span, now, idle_limit)  # marking done is labeling time too
    return Changed(seq, decision.after, entry)


async def start(session: AsyncSession, image_id: int, now: datetime) -> str | None:
    """A labeler is being granted the image's lock: a new or rejected image is now in progress.

    Returns the new state, or ``None`` when the image stays as it is. The change is logged in
    the grant's own op-log row (``image_state`` in the ``lock`` op: one change, one row), so the
    caller (``server.hub.leases.open_image``) has taken that row's seq — the project row —
    before this reads the state, the order every state change follows."""
    state = (await session.execute(select(Image.state).where(Image.id == image_id)
                                   .with_for_update())).scalar_one_or_none()
    move = workflow.starts(State(state)) if state is not None else None
    if move is None:
        return None
    await session.execute(update(Image).where(Image.id == image_id).values(
        state=move.after.value, state_at=now).execution_options(synchronize_session=False))
    return move.after.value


async def assign(session: AsyncSession, *, project_id: int, image_ids: Sequence[int],
                 user_id: int | None, by: int) -> tuple[int, int | None]:
    """Give the images to ``user_id`` (``None``: take them back). Returns (count, seq)."""
    if user_id is not None:
        member = (await session.execute(
            select(Membership.privileges, User.is_active).join(User, User.id == Membership.user_id)
            .where(Membership.project_id == project_id, Membership.user_id == user_id))).first()
        if member is None or not member.is_active:
            raise StateError("invalid", f"user {user_id} is not a member of this project")
        if not allowed(Actor(user_id, False, member.privileges), Privilege.LABEL):
            raise StateError("invalid", "images can only be assigned to someone who may label")
    ids = sorted(set((await session.execute(select(Image.id).where(
        Image.project_id == project_id, Image.id.in_(list(image_ids))))).scalars()))
    if not ids:
        return 0, None
    seq = await reserve_seqs(session, project_id, 1)
    await session.execute(delete(ImageAssignment).where(ImageAssignment.image_id.in_(ids)))
    if user_id is not None:
        now = utcnow()
        await session.execute(insert(ImageAssignment), [
            {"image_id": i, "project_id": project_id, "user_id": user_id, "assigned_by": by,
             "assigned_at": now} for i in ids])
    await append(session, project_id=project_id, image_id=None, user_id=by, kind="assign",
                 op={"kind": "assign", "user": user_id, "images": ids}, inverse=None,
                 client_op_id=None, origin="assign", seq=seq)
    return len(ids), seq


# --- REST ----------------------------------------------------------------------------------


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["done", "accept", "reject", "reopen"]
    comment: Annotated[str, Field(max_length=workflow.COMMENT_MAX)] | None = None
    token: int | None = None  # the lease token, for "done"
    expect: State | None = None  # the state the caller saw; another one is a conflict


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: DbId | None
    images: list[DbId] | None = Field(default=None, max_length=MAX_ASSIGN)
    filter: dict[str, Any] | None = None


async def set_state(request: Request) -> Response:
    image_id = path_int(request, "image_id")
    body = await read_body(request, StateIn)
    async with unit_of_work(request) as (session, user):
        image = await session.get(Image, image_id)
        if image is None:
            raise not_found("image")
        try:
            await project_access(session, user, image.project_id, Privilege.VIEW)
        except ApiError as exc:
            raise not_found("image") if exc.status == 404 else exc from None
        actor = await actor_for(session, user, image.project_id)
        try:
            done = await change_state(
                session, project_id=image.project_id, image_id=image_id, actor=actor,
                action=body.action, comment=body.comment, token=body.token, now=utcnow(),
                idle_limit=request.app.state.settings.idle_limit_seconds, expect=body.expect)
        except StateError as exc:
            raise exc.api() from None
        return JSONResponse({"image": image_id, "state": done.state.value, "seq": done.seq})


async def assign_images(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, AssignIn, needs(project_id, workflow.MANAGE))
    if (body.images is None) == (body.filter is None):
        raise ApiError(422, "invalid", "give either images or filter")
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, workflow.MANAGE)
        ids = body.images
        if body.filter is not None:
            flt = parse_as(ImageFilter, body.filter)
            ids = list((await session.execute(apply_filter(
                select(Image.id).where(Image.project_id == project_id), flt)
                .order_by(Image.id).limit(MAX_ASSIGN))).scalars())
        try:
            count, seq = await assign(session, project_id=project_id, image_ids=ids or [],
                                      user_id=body.user, by=user.id)
        except StateError as exc:
            raise exc.api() from None
        return JSONResponse({"assigned": count, "user": body.user, "seq": seq})


routes = [
    Route("/api/v1/images/{image_id}/state", set_state, methods=["POST"]),
    Route("/api/v1/projects/{project_id}/assignments", assign_images, methods=["POST"]),
]

__all__ = ["Changed", "StateError", "assign", "change_state", "routes", "start"]
