"""The objects table on the edit path (server/_object_store.py): a big op's rows are written and
read in set statements, stored exactly as the row-by-row statements store them."""

from __future__ import annotations

from sqlalchemy import text
from starlette.applications import Starlette

from server._object_store import _FEW, OBJECT_VALUES, ObjectWrites, load_objects
from server.db import transaction
from server.models import utcnow
from tests.conftest import Api, make_project
from tests.hub.conftest import upload_images


def _values(oid: str, n: int) -> dict[str, object]:
    return {"id": oid, "version": 1, "type": "bbox", "label": "car",
            "geometry": {"x": float(n), "y": 1.0, "w": 2.0, "h": 2.0},
            "keypoints": [] if n % 2 else [{"name": "k", "x": 1.0, "y": 2.0, "visible": True}],
            "attributes": {} if n % 3 else {"note": 'é "q"'},
            "rpy": None if n % 2 else [0.0, 1.5, 0.0],
            "occluded": bool(n % 2), "z": n}


async def test_many_inserts_store_what_few_do(app: Starlette, admin: Api) -> None:
    project = await make_project(admin)
    few_image, many_image = await upload_images(admin, project, 2)
    now, count = utcnow(), _FEW + 6
    for image, n in ((few_image, 2), (many_image, count)):
        writes = ObjectWrites(image_id=image, project_id=project, user_id=admin.user["id"],
                              source="manual", now=now)
        writes.inserts = [_values(f"o{i}", i) for i in range(n)]
        async with transaction(app.state.sessions) as session:
            await writes.run(session)
    columns = ", ".join(("id", "project_id", "source", "created_by", "updated_by", "created_at",
                         "updated_at", "version", *OBJECT_VALUES))
    async with transaction(app.state.sessions) as session:
        rows = {}
        for image in (few_image, many_image):
            found = await session.execute(text(
                f"SELECT {columns} FROM objects WHERE image_id = :i AND id IN ('o0', 'o1')"),
                {"i": image})
            rows[image] = sorted(tuple(r) for r in found)
        loaded = await load_objects(session, many_image, {f"o{i}" for i in range(count)} | {"nope"})
    assert rows[few_image] == rows[many_image] and len(rows[few_image]) == 2
    assert sorted(loaded) == sorted(f"o{i}" for i in range(count))  # read by one JSON list
    assert loaded["o4"].attributes == {} and loaded["o3"].attributes == {"note": 'é "q"'}
    assert loaded["o5"].rpy is None and loaded["o4"].rpy == [0.0, 1.5, 0.0]
