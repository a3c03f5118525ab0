"""``objects.image_id -> images``: a foreign key on SQLite, triggers on PostgreSQL (migration
0019, so a 5,000-object insert checks its image once, not 5,000 times). Both must behave as the
key: no object without its image, an image's deletion takes its objects, whatever the route."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette

from server.db import transaction
from server.models import Image, LabelObjectRow
from tests.conftest import Api, make_project
from tests.server._rows import make_images


def _row(image: int, project: int, oid: str) -> dict[str, Any]:
    return {"image_id": image, "id": oid, "project_id": project, "type": "bbox", "label": "car",
            "geometry": {"x": 1, "y": 1, "w": 2, "h": 2}, "keypoints": [], "attributes": {}}


async def _objects(app: Starlette) -> list[tuple[int, str]]:
    async with transaction(app.state.sessions) as session:
        rows = await session.execute(select(LabelObjectRow.image_id, LabelObjectRow.id)
                                     .order_by(LabelObjectRow.image_id, LabelObjectRow.id))
        return [(image, oid) for image, oid in rows]


async def test_objects_of_existing_images_insert_many_at_once(app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    a, b = await make_images(app, pid, ["a.png", "b.png"])
    async with transaction(app.state.sessions) as session:
        await session.execute(insert(LabelObjectRow), [
            _row(image, pid, f"o{i}") for i, image in enumerate([a, b, a, b, a])])
    assert len(await _objects(app)) == 5


async def test_an_object_needs_its_image(app: Starlette, admin: Api) -> None:
    """One missing image among many rows refuses the whole statement; a single row too."""
    pid = await make_project(admin)
    [a] = await make_images(app, pid, ["a.png"])
    for rows in ([_row(a, pid, "o1"), _row(a + 1000, pid, "o2"), _row(a, pid, "o3")],
                 [_row(a + 1000, pid, "o4")]):
        with pytest.raises(IntegrityError):
            async with transaction(app.state.sessions) as session:
                await session.execute(insert(LabelObjectRow), rows)
    assert await _objects(app) == []


async def test_an_object_moves_only_to_an_existing_image(app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    a, b = await make_images(app, pid, ["a.png", "b.png"])
    async with transaction(app.state.sessions) as session:
        await session.execute(insert(LabelObjectRow), [_row(a, pid, "o1")])
    with pytest.raises(IntegrityError):
        async with transaction(app.state.sessions) as session:
            await session.execute(update(LabelObjectRow).values(image_id=b + 1000))
    async with transaction(app.state.sessions) as session:
        await session.execute(update(LabelObjectRow).values(image_id=b))
    assert await _objects(app) == [(b, "o1")]


async def test_deleting_images_deletes_their_objects(app: Starlette, admin: Api) -> None:
    """Several images in one statement, and one through the route."""
    pid = await make_project(admin)
    a, b, c, d = await make_images(app, pid, ["a.png", "b.png", "c.png", "d.png"])
    async with transaction(app.state.sessions) as session:
        await session.execute(insert(LabelObjectRow), [
            _row(image, pid, f"o{i}") for i, image in enumerate([a, b, c, d, a, c])])
        await session.flush()
        await session.execute(delete(Image).where(Image.id.in_([a, b])))
    assert await _objects(app) == [(c, "o2"), (c, "o5"), (d, "o3")]
    assert (await admin.client.delete(f"/api/v1/images/{c}")).status_code == 204
    assert await _objects(app) == [(d, "o3")]
    async with transaction(app.state.sessions) as session:
        assert (await session.execute(select(func.count()).select_from(Image))).scalar_one() == 1
