"""Boxes a detector added, in the tool (server/_sources.py on the edit path): snapshots and
``GET .../objects`` say they are a model's; a person's edit makes one theirs (live to watchers,
undone with the edit); ``POST /auto-labels/confirm`` makes them all a person's (live, undoable)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette

from server.models import Image, LabelObjectRow
from tests.ai._boxes import plain_images, seeded_detector, seeded_prediction
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.hub.conftest import LiveServer


async def sources_of(app: Starlette, image: int) -> dict[str, str]:
    async with app.state.sessions() as session:
        rows = await session.execute(select(LabelObjectRow.id, LabelObjectRow.source)
                                     .where(LabelObjectRow.image_id == image))
        return {r[0]: r[1] for r in rows}


async def test_model_boxes_reviewed_by_editing_or_confirming(
        app: Starlette, admin: Api, users: UserFactory, live_server: LiveServer) -> None:
    pid = await make_project(admin)
    a, b = await plain_images(app, pid, 2)
    model_id, _ = await seeded_detector(app, pid)
    pa = await seeded_prediction(app, pid, model_id, a, [("cat", 0.9, 10, 10, 20, 20),
                                                         ("dog", 0.8, 50, 40, 20, 20)])
    pb = await seeded_prediction(app, pid, model_id, b, [("cat", 0.9, 5, 5, 20, 20)])
    added = await admin.client.post(f"/api/v1/projects/{pid}/predictions/add",
                                    json={"items": [{"prediction": pa}, {"prediction": pb}]})
    assert added.status_code == 200, added.text
    [on_a, on_b] = added.json()["applied"]
    cat, dog = (o["id"] for o in on_a["objects"])
    [cat_b] = (o["id"] for o in on_b["objects"])
    viewer = await users("viewer")
    await add_member(admin, pid, viewer, "viewer")
    listed = (await viewer.client.get(f"/api/v1/projects/{pid}/images/{a}/objects")).json()
    assert {o["id"]: o["source"] for o in listed["objects"]} == {cat: "auto", dog: "auto"}

    editor, watcher = await live_server.connect(admin), await live_server.connect(viewer)
    try:
        await editor.request("hello", project=pid)
        await watcher.request("hello", project=pid)
        token = (await editor.request("open_image", image=a))["lock"]["token"]
        assert (await watcher.request("subscribe", image=a))["type"] == "ack"
        snapshot = await watcher.event("snapshot", image=a)
        assert {o["id"]: o["source"] for o in snapshot["objects"]} == {cat: "auto", dog: "auto"}

        async def edit(cid: str, op: dict[str, Any]) -> dict[str, Any]:
            """The editor's op acked; what the watcher heard of it."""
            reply = await editor.request("op", image=a, token=token, client_op_id=cid, op=op)
            assert reply["type"] == "ack", reply
            return (await watcher.event("op", image=a))["op"]

        async def undo_redo(which: str) -> dict[str, Any]:
            reply = await editor.request(which, image=a, token=token)
            assert reply["type"] == "ack", reply
            heard = (await watcher.event("op", image=a))["op"]
            assert heard == reply["op"]
            return heard

        # A person moves the model's box: it is theirs now, and the watcher is told.
        moved = await edit("m1", {"kind": "move_box", "object_id": cat,
                                  "x": 12, "y": 12, "w": 20, "h": 20})
        assert moved["sources"] == {cat: "manual"}
        assert await sources_of(app, a) == {cat: "manual", dog: "auto"}
        again = await edit("m2", {"kind": "set_label", "object_id": cat, "label": "dog"})
        assert "sources" not in again  # a person's box already
        assert (await undo_redo("undo")).get("sources") is None
        # Undoing the first edit gives the box back to the model; redoing takes it again.
        assert (await undo_redo("undo"))["sources"] == {cat: "auto"}
        assert await sources_of(app, a) == {cat: "auto", dog: "auto"}
        assert (await undo_redo("redo"))["sources"] == {cat: "manual"}
        # A model's box deleted and the delete undone comes back as the model's.
        await edit("d1", {"kind": "delete", "object_id": dog})
        restored = await undo_redo("undo")
        assert restored["kind"] == "create" and restored["object"]["source"] == "auto"
        assert await sources_of(app, a) == {cat: "manual", dog: "auto"}
        # What a person draws is theirs, whatever the object they send says.
        drawn = await edit("c1", {"kind": "create", "object": {
            "id": "mine", "type": "bbox", "label": "cat", "source": "auto",
            "geometry": {"x": 60, "y": 5, "w": 10, "h": 10}}})
        assert drawn["object"]["source"] == "manual"
        refused = await editor.request("op", image=a, token=token, client_op_id="s1",
                                       op={"kind": "set_source", "sources": {dog: "manual"}})
        assert refused["type"] == "error" and refused["code"] == "invalid_op"

        # Confirming covers objects: b has a model's box and no model labels.
        url = f"/api/v1/projects/{pid}/auto-labels/confirm"
        resp = await admin.client.post(url, json={"images": [a, b]})
        assert resp.status_code == 200, resp.text
        assert resp.json()["confirmed"] == [{"image": a, "labels": [], "objects": [dog]},
                                            {"image": b, "labels": [], "objects": [cat_b]}]
        assert resp.json()["skipped"] == []
        heard = (await watcher.event("op", image=a))["op"]
        assert heard == {"kind": "set_source", "sources": {dog: "manual"}}
        assert await sources_of(app, a) == {cat: "manual", dog: "manual", "mine": "manual"}
        assert await sources_of(app, b) == {cat_b: "manual"}
        async with app.state.sessions() as session:
            marked = set((await session.execute(select(Image.id).where(
                Image.project_id == pid, Image.auto_labeled.is_(True)))).scalars())
        assert marked == set()
        again_resp = await admin.client.post(url, json={"images": [b]})
        assert again_resp.json()["skipped"] == [{"image": b, "reason": "nothing_to_confirm"}]
        # The confirmation is undoable in the tool like any change of the reviewer's.
        assert (await undo_redo("undo")) == {"kind": "set_source", "sources": {dog: "auto"}}
        assert await sources_of(app, a) == {cat: "manual", dog: "auto", "mine": "manual"}
    finally:
        await editor.close()
        await watcher.close()
