"""Label definitions, bulk classification (REST side of the default-label rules), star, sync."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from sqlalchemy import Integer, func, select
from starlette.applications import Starlette

from server._label_store import read_image_labels
from server.db import transaction
from server.models import ImageLabel, LabelObjectRow
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.hub.conftest import LiveServer
from tests.server._rows import make_images, op_log


async def labels_of(api: Api, pid: int) -> dict[int, list[tuple[str, bool]]]:
    resp = await api.client.get(f"/api/v1/projects/{pid}/images", params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return {i["id"]: [(lb["name"], lb["is_default"]) for lb in i["labels"]] for i in resp.json()["images"]}


async def default_of(app: Starlette, image_id: int) -> str | None:
    async with transaction(app.state.sessions) as session:
        state = await read_image_labels(session, image_id)
    return next((s.label for s in state if s.is_default), None)


async def names_of(app: Starlette, image_id: int) -> list[str]:
    async with transaction(app.state.sessions) as session:
        return [s.label for s in await read_image_labels(session, image_id)]


async def apply(api: Api, pid: int, op: dict[str, Any], ids: list[int]) -> dict[str, Any]:
    resp = await api.client.post(f"/api/v1/projects/{pid}/labels/apply", json={"op": op, "image_ids": ids})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def add_object(app: Starlette, pid: int, image_id: int, oid: str, label: str) -> None:
    async with transaction(app.state.sessions) as session:
        session.add(LabelObjectRow(image_id=image_id, id=oid, project_id=pid, type="bbox", label=label,
                                   geometry={"x": 1, "y": 1, "w": 5, "h": 5}))


async def test_create_list_and_suggest_labels(admin: Api) -> None:
    pid = await make_project(admin)
    for name in ("cat", "car", "dog"):
        resp = await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": name})
        assert resp.status_code == 201, resp.text
    dup = await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": " cat "})
    assert dup.status_code == 409
    bad = await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": "x", "color": "red"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "color"
    listed = (await admin.client.get(f"/api/v1/projects/{pid}/labels", params={"q": "ca"})).json()["labels"]
    assert [lb["name"] for lb in listed] == ["car", "cat"]
    assert all(lb["color"].startswith("#") and lb["image_count"] == 0 for lb in listed)


async def test_bulk_add_first_label_is_default_and_is_logged(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png"])
    out = await apply(admin, pid, {"kind": "add_label", "label": "cat"}, ids)
    assert out["changed"] == 2
    await apply(admin, pid, {"kind": "add_label", "label": "dog"}, ids[:1])
    assert await default_of(app, ids[0]) == "cat" and await names_of(app, ids[0]) == ["cat", "dog"]
    # The unknown labels were created, with palette colors.
    labels = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
    assert {lb["name"]: lb["image_count"] for lb in labels} == {"cat": 2, "dog": 1}
    log = await op_log(app, pid)
    assert [e["seq"] for e in log] == [1, 2, 3] and log[0]["origin"] == "rest"
    assert log[2]["op"] == {"kind": "add_label", "label": "dog", "source": "manual"}
    assert log[2]["inverse"] == {"kind": "remove_label", "label": "dog"}


async def test_bulk_add_existing_label_makes_it_default(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png"])
    await apply(admin, pid, {"kind": "add_label", "label": "cat"}, ids)
    await apply(admin, pid, {"kind": "add_label", "label": "dog"}, ids)
    await apply(admin, pid, {"kind": "add_label", "label": "dog"}, ids[:1])
    assert [await default_of(app, i) for i in ids] == ["dog", "cat"]


async def test_star_makes_label_default_on_every_image_that_has_it(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png", "c.png"])
    await apply(admin, pid, {"kind": "add_label", "label": "cat"}, ids[:2])
    await apply(admin, pid, {"kind": "add_label", "label": "dog"}, ids)
    dog = next(lb["id"] for lb in (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
               if lb["name"] == "dog")
    resp = await admin.client.post(f"/api/v1/projects/{pid}/labels/{dog}/star")
    assert resp.status_code == 200 and resp.json()["changed"] == 2
    assert [await default_of(app, i) for i in ids] == ["dog", "dog", "dog"]


async def test_set_default_and_remove_promotes_earliest(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    for name in ("a", "b", "c"):
        await apply(admin, pid, {"kind": "add_label", "label": name}, [img])
    await apply(admin, pid, {"kind": "set_default_label", "label": "c"}, [img])
    assert await default_of(app, img) == "c"
    await apply(admin, pid, {"kind": "remove_label", "label": "c"}, [img])
    assert await default_of(app, img) == "a"


async def test_apply_to_current_filter(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png", "c.png"])
    await apply(admin, pid, {"kind": "add_label", "label": "cat"}, ids[:2])
    resp = await admin.client.post(f"/api/v1/projects/{pid}/labels/apply",
                                   json={"op": {"kind": "add_label", "label": "pet"}, "filter": {"label": "cat"}})
    assert resp.status_code == 200 and resp.json()["changed"] == 2
    assert [await names_of(app, i) for i in ids] == [["cat", "pet"], ["cat", "pet"], []]


async def test_bad_bulk_requests_change_nothing(admin: Api, app: Starlette) -> None:
    pid, other = await make_project(admin), await make_project(admin, "Other")
    [img] = await make_images(app, pid, ["a.png"])
    [foreign] = await make_images(app, other, ["b.png"])
    url = f"/api/v1/projects/{pid}/labels/apply"
    cases = [
        ({"op": {"kind": "explode"}, "image_ids": [img]}, 422),
        ({"op": {"kind": "add_label", "label": ""}, "image_ids": [img]}, 422),
        ({"op": {"kind": "set_labels", "labels": []}, "image_ids": [img]}, 422),
        ({"op": {"kind": "add_label", "label": "x"}}, 422),
        ({"op": {"kind": "add_label", "label": "x"}, "image_ids": [img, foreign]}, 404),
    ]
    for body, status in cases:
        resp = await admin.client.post(url, json=body)
        assert resp.status_code == status, (body, resp.text)
        assert "code" in resp.json()["error"]
    assert await names_of(app, img) == [] and await op_log(app, pid) == []


async def test_rename_carries_to_objects_and_images(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    await apply(admin, pid, {"kind": "add_label", "label": "cat"}, [img])
    await add_object(app, pid, img, "o1", "cat")
    cat = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"][0]
    assert cat["object_count"] == 1
    resp = await admin.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}",
                                    json={"name": "kitty", "color": "#00FF00", "shortcut": 1})
    assert resp.status_code == 200, resp.text
    assert resp.json() | {"id": 0} == {"id": 0, "name": "kitty", "color": "#00ff00", "shortcut": 1,
                                       "image_count": 1, "object_count": 1}
    assert await names_of(app, img) == ["kitty"]
    assert (await op_log(app, pid))[-1]["op"] == {"kind": "rename_label", "from": "cat", "to": "kitty"}
    await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": "dog"})
    clash = await admin.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}", json={"name": "dog"})
    assert clash.status_code == 409


async def test_shortcut_digit_moves_to_the_new_label(admin: Api) -> None:
    pid = await make_project(admin)
    a = (await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": "a", "shortcut": 3})).json()
    b = (await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": "b"})).json()
    await admin.client.patch(f"/api/v1/projects/{pid}/labels/{b['id']}", json={"shortcut": 3})
    listed = {lb["name"]: lb["shortcut"] for lb in (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]}
    assert listed == {"a": None, "b": 3} and a["shortcut"] == 3


async def test_delete_label_promotes_defaults_and_clears_objects(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    for name in ("cat", "dog", "owl"):
        await apply(admin, pid, {"kind": "add_label", "label": name}, [img])
    await add_object(app, pid, img, "o1", "cat")
    cat = next(lb for lb in (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
               if lb["name"] == "cat")
    resp = await admin.client.delete(f"/api/v1/projects/{pid}/labels/{cat['id']}")
    assert resp.json() == {"deleted": "cat", "images": 1, "objects_cleared": 1}
    assert await names_of(app, img) == ["dog", "owl"] and await default_of(app, img) == "dog"


async def test_sync_is_retroactive_and_idempotent(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png"])
    await apply(admin, pid, {"kind": "add_label", "label": "street"}, ids[:1])
    await add_object(app, pid, ids[0], "o1", "car")
    await add_object(app, pid, ids[0], "o2", "car")
    await add_object(app, pid, ids[1], "o3", "person")
    first = await admin.client.post(f"/api/v1/projects/{pid}/labels/sync")
    assert first.json()["changed"] == 2
    second = await admin.client.post(f"/api/v1/projects/{pid}/labels/sync")
    assert second.json() == {"changed": 0, "seq": None}
    assert await names_of(app, ids[0]) == ["street", "car"] and await default_of(app, ids[0]) == "street"
    assert await names_of(app, ids[1]) == ["person"]


async def test_label_privileges(admin: Api, users: UserFactory, app: Starlette) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    labeler, viewer, stranger = await users("lab"), await users("view"), await users("x")
    await add_member(admin, pid, labeler, "labeler")
    await add_member(admin, pid, viewer, "viewer")
    body = {"op": {"kind": "add_label", "label": "cat"}, "image_ids": [img]}
    assert (await labeler.client.post(f"/api/v1/projects/{pid}/labels/apply", json=body)).status_code == 200
    assert (await viewer.client.post(f"/api/v1/projects/{pid}/labels/apply", json=body)).status_code == 403
    assert (await stranger.client.get(f"/api/v1/projects/{pid}/labels")).status_code == 404
    cat = (await viewer.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"][0]
    resp = await labeler.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}", json={"name": "x"})
    assert resp.status_code == 403


async def test_committed_ops_are_announced_and_rollbacks_are_not(admin: Api, app: Starlette) -> None:
    from server._oplog import on_ops_committed
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    seen: list[tuple[int, int]] = []
    unregister = on_ops_committed(lambda p, s, _entries: seen.append((p, s)))
    try:
        await apply(admin, pid, {"kind": "add_label", "label": "cat"}, [img])
        bad = await admin.client.post(f"/api/v1/projects/{pid}/labels/apply",
                                      json={"op": {"kind": "add_label", "label": "x"}, "image_ids": [img, 99999]})
        assert bad.status_code == 404
    finally:
        unregister()
    assert seen == [(pid, 1)]


async def test_removing_default_promotes_earliest_added_not_lowest_id_or_name(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png"])
    for name in ("moth", "ant", "zebra"):  # label ids: moth < ant < zebra
        await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": name})
    # One import writes all three labels in one transaction (the same clock reading).
    body = "image,labels,default_label\na.png,zebra;moth;ant,ant\nb.png,moth;ant;zebra,zebra\n"
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "csv"}, content=body)
    assert resp.status_code == 200, resp.text
    assert await names_of(app, ids[0]) == ["zebra", "moth", "ant"]
    await apply(admin, pid, {"kind": "remove_label", "label": "ant"}, ids[:1])
    await apply(admin, pid, {"kind": "remove_label", "label": "zebra"}, ids[1:])
    # Earliest added: zebra on a.png (not moth, the lowest id and first by name), moth on b.png.
    assert [await default_of(app, i) for i in ids] == ["zebra", "moth"]
    assert (await labels_of(admin, pid))[ids[0]] == [("zebra", True), ("moth", False)]


async def test_every_labeled_image_keeps_exactly_one_default(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png", "c.png", "d.png"])
    rng = random.Random(5)
    kinds = ["add_label", "add_label", "remove_label", "set_default_label"]
    for _ in range(24):
        op = {"kind": rng.choice(kinds), "label": rng.choice(["cat", "dog", "owl"])}
        await apply(admin, pid, op, rng.sample(ids, rng.randint(1, len(ids))))
        async with transaction(app.state.sessions) as session:
            rows = (await session.execute(
                select(ImageLabel.image_id, func.count(), func.sum(func.cast(ImageLabel.is_default, Integer)))
                .where(ImageLabel.image_id.in_(ids)).group_by(ImageLabel.image_id))).all()
        assert all(defaults == 1 for _image, _count, defaults in rows), (op, rows)


async def test_rename_is_one_transaction_and_refusals_change_nothing(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, ["a.png", "b.png"])
    await apply(admin, pid, {"kind": "add_label", "label": "cat"}, ids)
    await add_object(app, pid, ids[0], "o1", "cat")
    await add_object(app, pid, ids[1], "o2", "cat")
    await add_object(app, pid, ids[1], "o3", "dog")
    cat = next(lb for lb in (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
               if lb["name"] == "cat")
    await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": "owl"})
    seq_before = len(await op_log(app, pid))
    for body, status in (({"name": "owl"}, 409), ({"name": " "}, 422), ({"color": "blue"}, 422)):
        resp = await admin.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}", json=body)
        assert resp.status_code == status, resp.text
    assert await object_labels(app, pid) == {"o1": "cat", "o2": "cat", "o3": "dog"}
    assert len(await op_log(app, pid)) == seq_before
    resp = await admin.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}", json={"name": "kitty"})
    assert resp.status_code == 200, resp.text
    assert await object_labels(app, pid) == {"o1": "kitty", "o2": "kitty", "o3": "dog"}
    assert [await names_of(app, i) for i in ids] == [["kitty"], ["kitty"]]
    [entry] = (await op_log(app, pid))[seq_before:]
    assert (entry["image_id"], entry["inverse"]) == (None, {"kind": "rename_label", "from": "kitty", "to": "cat"})


async def object_labels(app: Starlette, pid: int) -> dict[str, str]:
    async with transaction(app.state.sessions) as session:
        rows = await session.execute(select(LabelObjectRow.id, LabelObjectRow.label)
                                     .where(LabelObjectRow.project_id == pid))
        return {oid: label for oid, label in rows}


async def test_live_clients_see_rest_label_changes(admin: Api, app: Starlette, live_server: LiveServer) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    ws = await live_server.connect(admin)
    try:
        await ws.request("hello", project=pid)
        await ws.request("subscribe", image=img)
        snap = await ws.event("snapshot", image=img)
        assert snap["labels"] == []
        out = await apply(admin, pid, {"kind": "add_label", "label": "cat"}, [img])
        event = await ws.event("op", image=img)
        assert (event["seq"], event["origin"], event["op"]) == (
            out["seq"], "rest", {"kind": "add_label", "label": "cat", "source": "manual"})
        cat = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"][0]
        await admin.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}", json={"name": "kitty"})
        renamed = await ws.event("op")
        assert "image" not in renamed and renamed["op"] == {"kind": "rename_label", "from": "cat", "to": "kitty"}
    finally:
        await ws.close()


async def test_sync_setting_adds_labels_for_new_object_labels(admin: Api, app: Starlette, live_server: LiveServer) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    await apply(admin, pid, {"kind": "add_label", "label": "street"}, [img])
    ws = await live_server.connect(admin)
    try:
        await ws.request("hello", project=pid)
        token = (await ws.request("open_image", image=img))["lock"]["token"]

        async def create(oid: str, label: str) -> None:
            ack = await ws.request("op", image=img, token=token, client_op_id=oid, op={
                "kind": "create", "object": {"id": oid, "type": "point", "label": label,
                                             "geometry": {"x": 3, "y": 4}}})
            assert ack["type"] == "ack", ack

        await create("o1", "car")  # synchronization is off: nothing added
        assert await names_of(app, img) == ["street"]
        await admin.client.patch(f"/api/v1/projects/{pid}/settings", json={"synchronize_labels": True})
        await create("o2", "bus")
        await create("o3", "bus")  # already there: not added twice
        await create("o4", "street")  # the image has it: the default does not move
    finally:
        await ws.close()
    async with transaction(app.state.sessions) as session:
        state = await read_image_labels(session, img)
    assert [(s.label, s.is_default, s.source) for s in state] == [("street", True, "manual"), ("bus", False, "sync")]
    # The retroactive action then adds what was drawn before the setting was on, once.
    first = (await admin.client.post(f"/api/v1/projects/{pid}/labels/sync")).json()
    again = (await admin.client.post(f"/api/v1/projects/{pid}/labels/sync")).json()
    assert first["changed"] == 1 and again == {"changed": 0, "seq": None}
    assert await names_of(app, img) == ["street", "bus", "car"]
    log = [e for e in await op_log(app, pid) if e["kind"] == "add_label" and e["op"]["source"] == "sync"]
    assert [(e["op"]["label"], e["origin"]) for e in log] == [("bus", "sync"), ("car", "rest")]


async def test_object_labels_join_the_vocabulary(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    await add_object(app, pid, img, "o1", "car")  # drawn in the tool: no label definition yet
    await add_object(app, pid, img, "o2", "")
    labels = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
    assert [(lb["name"], lb["image_count"], lb["object_count"]) for lb in labels] == [("car", 0, 1)]
    again = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
    assert again == labels  # adopted once, with a stable id and color
    resp = await admin.client.patch(f"/api/v1/projects/{pid}/labels/{labels[0]['id']}",
                                    json={"name": "truck", "shortcut": 4})
    assert resp.status_code == 200, resp.text
    assert await object_labels(app, pid) == {"o1": "truck", "o2": ""}


async def test_concurrent_bulk_ops_keep_one_default(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    ids = await make_images(app, pid, [f"{i}.png" for i in range(4)])
    url = f"/api/v1/projects/{pid}/labels/apply"
    bodies = [{"op": {"kind": "add_label", "label": f"l{k}"}, "image_ids": ids} for k in range(8)]
    responses = await asyncio.gather(*(admin.client.post(url, json=b) for b in bodies))
    assert [r.status_code for r in responses] == [200] * 8
    for image_id in ids:
        labels = await names_of(app, image_id)
        assert sorted(labels) == [f"l{k}" for k in range(8)]
        async with transaction(app.state.sessions) as session:
            defaults = (await session.execute(select(func.count()).select_from(ImageLabel).where(
                ImageLabel.image_id == image_id, ImageLabel.is_default.is_(True)))).scalar_one()
        assert defaults == 1 and await default_of(app, image_id) == labels[0]
