"""Export reading: bounded batches in id order, read ahead, stopped cleanly when abandoned."""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette

from server.formats._source import iter_images, open_snapshot
from server.image_query import ImageFilter
from tests.conftest import Api
from tests.server.formats._seed import seeded_project
from tests.server.formats.test_native import export


async def test_batches_are_bounded_in_id_order_and_match_the_native_export(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    batches = [b async for b in iter_images(app.state.sessions, pid, None, batch=2)]
    assert [len(b) for b in batches] == [2, 1]
    records = [r for b in batches for r in b]
    assert [r.id for r in records] == sorted(r.id for r in records)
    native = json.loads(await export(admin, pid))["images"]
    assert [r.objects for r in records] == [i["objects"] for i in native]
    only = [b async for b in iter_images(app.state.sessions, pid, ImageFilter(label="cat"), batch=1)]
    assert [[r.name for r in b] for b in only] == [["a.png"], ["b.png"]]


async def test_an_abandoned_export_stops_reading(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    before = set(asyncio.all_tasks())
    gen = iter_images(app.state.sessions, pid, None, batch=1)
    first = await anext(gen)
    assert len(first) == 1
    await gen.aclose()  # what starlette does when the client goes away
    assert set(asyncio.all_tasks()) - before == set()


async def test_an_export_is_one_snapshot_at_the_seq_it_states(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    seq_before = int((await admin.client.get(f"/api/v1/projects/{pid}/export",
                                             params={"format": "csv"})).headers["X-Labelhub-Seq"])
    snapshot = await open_snapshot(app.state.sessions, pid)
    try:
        gen = iter_images(snapshot, pid, None, batch=1)
        first = await anext(gen)
        assert first[0].name == "a.png"
        # An edit to c.png commits while the export runs (writers are not blocked)...
        edit = {"images": [{"name": "c.png", "objects": [{"id": "new", "type": "bbox", "label": "cat",
                                                          "geometry": {"x": 1, "y": 1, "w": 2, "h": 2}}]}]}
        resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json=edit)
        assert resp.status_code == 200, resp.text
        rest = [r async for b in gen for r in b]
        # ...and does not appear in it: the export is the project as of its seq.
        assert [r.name for r in rest] == ["b.png", "c.png"] and rest[1].objects == []
        assert snapshot.seq == seq_before
    finally:
        await snapshot.close()
    after = json.loads(await export(admin, pid))
    assert after["seq"] == seq_before + 1 and after["images"][2]["objects"][0]["id"] == "new"
