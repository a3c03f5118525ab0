"""``GET /api/v1/projects/{project_id}/images/{image_id}/objects``: one image's objects over REST.

The objects are what a socket ``snapshot`` holds (the same wire form, in z order) with the op-log
``seq`` they reflect: a script can read them and then follow the socket from that seq, or compare
seqs to know whether it is up to date. Like the snapshot, the database aggregates the rows into
the JSON text and it goes out unparsed (``server.hub._snapshot``): decoding and re-encoding
10,000 objects in Python would cost more than reading them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server._web import project_access, unit_of_work
from server.errors import not_found
from server.hub._snapshot import objects_with_seq
from server.images import path_id
from server.permissions import Privilege

__all__ = ["image_objects", "routes"]


async def image_objects(request: Request) -> Response:
    """``{"image": id, "seq": N, "objects": [...]}``; viewing the project is enough."""
    project_id = path_id(request, "project_id")
    image_id = path_id(request, "image_id")
    async with unit_of_work(request) as (session, user):
        # The project's privilege, then the image within it and its objects in one statement.
        await project_access(session, user, project_id, Privilege.VIEW)
        found = await objects_with_seq(session, project_id, image_id)
    if found is None:  # no such image in this project
        raise not_found("image")
    seq, objects = found
    body = f'{{"image": {image_id}, "seq": {seq}, "objects": {objects}}}'
    return Response(body, media_type="application/json")


routes: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id}/images/{image_id}/objects", image_objects,
          methods=["GET"]),
]
