"""Adding a detector's boxes (``POST /predictions/add``): through the edit path as ``auto``
objects, live to watchers, undoable; chosen and adjusted boxes; a box matching an object of
its label is not added twice; people's objects untouched; locked images skipped and reported;
stale predictions never applied; privileges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from starlette.applications import Starlette

from server.ai.auto_objects import bounds
from server.db import transaction
from server.models import Image, ImageLabel, ImageLock, LabelDef, LabelObjectRow, OpLogEntry, utcnow
from tests.ai._boxes import plain_images, seeded_detector, seeded_prediction
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.hub.conftest import LiveServer

HUMAN = {"kind": "create", "object": {"id": "human", "type": "bbox", "label": "cat",
                                      "geometry": {"x": 10, "y": 10, "w": 30, "h": 30}}}


async def objects_of(app: Starlette, image: int) -> dict[str, tuple[str, str, dict[str, float]]]:
    async with app.state.sessions() as session:
        rows = await session.execute(select(LabelObjectRow.id, LabelObjectRow.label,
                                            LabelObjectRow.source, LabelObjectRow.geometry)
                                     .where(LabelObjectRow.image_id == image))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def test_adding_boxes_live_deduped_locked_skipped_and_undone(
        app: Starlette, admin: Api, users: UserFactory, live_server: LiveServer) -> None:
    pid = await make_project(admin)
    a, b, c, d = await plain_images(app, pid, 4)
    model_id, _ = await seeded_detector(app, pid, threshold=0.4)
    pa = await seeded_prediction(app, pid, model_id, a, [
        ("cat", 0.9, 11, 11, 30, 30),  # the box a person drew already: not added twice
        ("cat", 0.8, 50, 40, 20, 20), ("dog", 0.3, 50, 40, 20, 20)])  # dog: under the threshold
    pb = await seeded_prediction(app, pid, model_id, b, [("dog", 0.7, 5, 5, 20, 20),
                                                         ("cat", 0.6, 60, 10, 20, 20)])
    pc = await seeded_prediction(app, pid, model_id, c, [("cat", 0.9, 5, 5, 20, 20)])
    other, viewer = await users("other"), await users("viewer")
    await add_member(admin, pid, other, "labeler")
    await add_member(admin, pid, viewer, "viewer")
    async with transaction(app.state.sessions) as session:
        await session.execute(insert(ImageLock).values(
            image_id=c, project_id=pid, holder_id=other.user["id"], connection_id="x", token=1,
            acquired_at=utcnow(), expires_at=utcnow() + timedelta(minutes=5)))
    editor, watcher = await live_server.connect(admin), await live_server.connect(viewer)
    try:
        await editor.request("hello", project=pid)
        await watcher.request("hello", project=pid)
        token = (await editor.request("open_image", image=a))["lock"]["token"]
        assert (await editor.request("op", image=a, token=token, client_op_id="h1",
                                     op=HUMAN))["type"] == "ack"
        assert (await watcher.request("subscribe", image=a))["type"] == "ack"
        url = f"/api/v1/projects/{pid}/predictions/add"
        body = {"items": [
            {"prediction": pa},  # default: the boxes at or over the threshold
            {"prediction": pb, "objects": [{"index": 0, "geometry": {"x": 6, "y": 6, "w": 22, "h": 22}}]},
            {"prediction": pc}]}
        assert (await viewer.client.post(url, json=body)).status_code == 403
        resp = await admin.client.post(url, json=body)
        assert resp.status_code == 200, resp.text
        out = resp.json()
        [on_a, on_b] = out["applied"]
        assert out["skipped"] == [{"image": c, "reason": "locked"}]
        assert on_a["image"] == a and on_a["duplicates"] == 1 and "labels" not in on_a
        assert [o["label"] for o in on_a["objects"]] == ["cat"]
        assert on_b["image"] == b and [o["label"] for o in on_b["objects"]] == ["dog"]
        new_a, new_b = on_a["objects"][0]["id"], on_b["objects"][0]["id"]
        # Live: the watcher of image a hears of the new box.
        seen = await watcher.event("op", image=a)
        assert seen["op"]["kind"] == "create" and seen["op"]["object"]["id"] == new_a
        assert await objects_of(app, a) == {
            "human": ("cat", "manual", {"x": 10, "y": 10, "w": 30, "h": 30}),
            new_a: ("cat", "auto", {"x": 50, "y": 40, "w": 20, "h": 20})}
        assert await objects_of(app, b) == {new_b: ("dog", "auto", {"x": 6, "y": 6, "w": 22, "h": 22})}
        assert await objects_of(app, c) == {}
        async with app.state.sessions() as session:
            ops = (await session.execute(select(OpLogEntry).where(
                OpLogEntry.project_id == pid, OpLogEntry.origin == "rest")
                .order_by(OpLogEntry.seq))).scalars().all()
            assert [(o.image_id, o.kind) for o in ops] == [(a, "create"), (b, "create")]
            assert ops[-1].seq == out["seq"] and ops[0].inverse == {"kind": "delete", "object_id": new_a}
            flags = dict((await session.execute(select(Image.id, Image.object_count).where(
                Image.id.in_([a, b, c])))).all())
            marked = set((await session.execute(select(Image.id).where(
                Image.project_id == pid, Image.auto_labeled.is_(True)))).scalars())
        assert flags == {a: 2, b: 1, c: 0} and marked == {a, b}
        statuses = {i["id"]: i["status"] for i in (await viewer.client.get(
            f"/api/v1/projects/{pid}/predictions")).json()["items"]}
        assert statuses == {pa: "added", pb: "added", pc: "pending"}

        # Undo in the tool takes the added box away again (the add is the user's last change).
        undone = await editor.request("undo", image=a, token=token)
        assert undone["type"] == "ack" and undone["op"] == {"kind": "delete", "object_id": new_a}
        assert set(await objects_of(app, a)) == {"human"}
        again = await admin.client.post(url, json={"items": [{"prediction": pa}]})
        assert again.json()["skipped"] == [{"image": a, "reason": "added"}]
    finally:
        await editor.close()
        await watcher.close()

    # A label renamed: the model's predictions are stale and never applied.
    pd = await seeded_prediction(app, pid, model_id, d, [("dog", 0.9, 5, 5, 20, 20)])
    labels = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
    dog = next(x for x in labels if x["name"] == "dog")
    assert (await admin.client.patch(f"/api/v1/projects/{pid}/labels/{dog['id']}",
                                     json={"name": "hound"})).status_code == 200
    stale = await admin.client.post(url, json={"items": [{"prediction": pd}]})
    assert stale.json()["skipped"] == [{"image": d, "reason": "stale"}]
    assert await objects_of(app, d) == {}


async def test_bad_add_requests(app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    a, b = await plain_images(app, pid, 2)
    model_id, _ = await seeded_detector(app, pid)
    pa = await seeded_prediction(app, pid, model_id, a, [("cat", 0.9, 5, 5, 20, 20)])
    url = f"/api/v1/projects/{pid}/predictions/add"
    bad: dict[str, Any]
    for bad in ({"items": [{"prediction": pa, "objects": [{"index": 1}]}]},
                {"items": [{"prediction": pa, "image": b}]},
                {"items": [{"image": a, "objects": [{"index": 0}]}]},
                {"items": [{"prediction": pa, "objects": [{"index": 0, "geometry": {
                    "x": 1, "y": 1, "w": 0, "h": 5}}]}]},
                {"items": [{"prediction": pa, "objects": [{"index": 0, "geometry": {
                    "x": 500, "y": 500, "w": 10, "h": 10}}]}]},  # off the 100 x 80 image
                {"items": [{}]}):
        resp = await admin.client.post(url, json=bad)
        assert resp.status_code == 422, (bad, resp.text)
    other = await make_project(admin, "Other")
    [x] = await plain_images(app, other, 1)
    elsewhere = await seeded_prediction(app, other, (await seeded_detector(app, other))[0], x,
                                        [("cat", 0.9, 5, 5, 20, 20)])
    assert (await admin.client.post(url, json={"items": [{"prediction": elsewhere}]})
            ).status_code == 404
    assert await objects_of(app, a) == {}  # nothing half-written


def test_bounds_of_stored_geometries() -> None:
    assert bounds("bbox", {"x": 1, "y": 2, "w": 3, "h": 4}) == (1, 2, 3, 4)
    assert bounds("polygon", {"parts": [{"exterior": [[1, 1], [5, 2], [3, 9]]}]}) == (1, 1, 4, 8)
    assert bounds("polyline", {"points": [[2, 2], [4, 6]]}) == (2, 2, 2, 4)
    assert bounds("point", {"x": 1, "y": 1}) is None


async def test_with_label_synchronization_the_image_labels_follow_the_added_boxes(
        app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    [a] = await plain_images(app, pid, 1)
    resp = await admin.client.patch(f"/api/v1/projects/{pid}/settings",
                                    json={"synchronize_labels": True})
    assert resp.status_code == 200, resp.text
    model_id, _ = await seeded_detector(app, pid)
    p = await seeded_prediction(app, pid, model_id, a, [("cat", 0.9, 5, 5, 20, 20),
                                                        ("cat", 0.8, 50, 40, 20, 20)])
    other_model, _ = await seeded_detector(app, pid, name="other")
    other = await seeded_prediction(app, pid, other_model, a, [("dog", 0.9, 5, 5, 20, 20)])
    out = (await admin.client.post(f"/api/v1/projects/{pid}/predictions/add",
                                   json={"items": [{"prediction": p}]})).json()
    assert len(out["applied"][0]["objects"]) == 2
    # Only the prediction named is reviewed: another model's for the image stays pending.
    statuses = {i["id"]: i["status"] for i in (await admin.client.get(
        f"/api/v1/projects/{pid}/predictions")).json()["items"]}
    assert statuses == {p: "added", other: "pending"}
    async with app.state.sessions() as session:
        labels = (await session.execute(select(ImageLabel.source, LabelDef.name).join(
            LabelDef, LabelDef.id == ImageLabel.label_id).where(ImageLabel.image_id == a))).all()
        last = (await session.execute(select(OpLogEntry).where(OpLogEntry.seq == out["seq"],
                                                               OpLogEntry.project_id == pid))
                ).scalar_one()
    assert [tuple(r) for r in labels] == [("sync", "cat")]
    assert (last.kind, last.origin) == ("add_label", "sync")
