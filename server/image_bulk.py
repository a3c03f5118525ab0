"""Routes: actions on many images at once — a selection of ids, or every image a filter matches.

``POST /api/v1/projects/{id}/images/delete`` deletes what the dashboard's selection says, all of it:
with *select all matching* that is every image the filter matches, not the page on screen. The
browser confirms with the number first and sends it as ``expected``; when the filter matches a
different number by then (someone uploaded or deleted meanwhile) nothing is deleted and the answer
is a 409 with the new number, so nobody deletes more than they agreed to. Images another person
is labeling right now are left alone and reported.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server._web import needs, path_int, project_access, read_body, unit_of_work
from server.errors import ApiError
from server.image_query import DbId
from server.image_sets import MAX_IMAGES, locked_by_others, target_images
from server.images import image_store, remove_images
from server.models import Image
from server.permissions import Privilege

__all__ = ["CHUNK", "routes"]

CHUNK = 200  # images deleted per transaction: a long delete never holds the writer for long


class DeleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_ids: list[DbId] | None = Field(default=None, max_length=MAX_IMAGES)
    filter: dict[str, Any] | None = None
    # The number the person confirmed ("Delete 1,234 images?"); checked before anything goes.
    expected: int | None = Field(default=None, ge=0)


async def delete_images(request: Request) -> Response:
    project_id = path_int(request, "project_id")
    body = await read_body(request, DeleteIn, needs(project_id, Privilege.DELETE))
    async with unit_of_work(request) as (session, user):
        await project_access(session, user, project_id, Privilege.DELETE)
        ids = await target_images(session, project_id, body.image_ids, body.filter, limit=None,
                                  ids_field="image_ids")
        if body.expected is not None and body.expected != len(ids):
            raise ApiError(409, "conflict", f"the selection is now {len(ids)} image(s), not "
                           f"{body.expected}: nothing was deleted; confirm again",
                           {"count": len(ids)})
    store = image_store(request)
    deleted = 0
    skipped: list[dict[str, Any]] = []
    for start in range(0, len(ids), CHUNK):
        async with unit_of_work(request) as (session, user):
            # Checked again per chunk: a privilege taken away mid-way stops the rest.
            await project_access(session, user, project_id, Privilege.DELETE)
            chunk = ids[start : start + CHUNK]
            busy = await locked_by_others(session, chunk, user.id)
            rows = (await session.execute(select(Image).where(
                Image.project_id == project_id, Image.id.in_(chunk)))).scalars().all()
            skipped += [{"image": image.id, "reason": "being_labeled"}
                        for image in rows if image.id in busy]
            free = [image for image in rows if image.id not in busy]
            await remove_images(session, store, free)
            deleted += len(free)
    return JSONResponse({"deleted": deleted, "skipped": skipped})


routes = [Route("/api/v1/projects/{project_id}/images/delete", delete_images, methods=["POST"])]
