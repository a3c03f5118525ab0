"""Label definitions, bulk classification (REST side of the default-label rules), star, sync."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from server.db import transaction
from server.models import LabelObjectRow
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.server._rows import make_images, op_log


async def labels_of(api: Api, pid: int) -> dict[int, list[tuple[str, bool]]]:
    resp = await api.client.get(f"/api/v1/projects/{pid}/images", params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return {i["id"]: [(lb["name"], lb["is_default"]) for lb in i["labels"]] for i in resp.json()["items"]}


async def default_of(app: Starlette, image_id: int) -> str | None:
    from server._label_store import read_image_labels
    async with transaction(app.state.sessions) as session:
        state = await read_image_labels(session, image_id)
    return next((s.label for s in state if s.is_default), None)


async def names_of(app: Starlette, image_id: int) -> list[str]:
    from server._label_store import read_image_labels
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
    unregister = on_ops_committed(lambda p, s: seen.append((p, s)))
    try:
        await apply(admin, pid, {"kind": "add_label", "label": "cat"}, [img])
        bad = await admin.client.post(f"/api/v1/projects/{pid}/labels/apply",
                                      json={"op": {"kind": "add_label", "label": "x"}, "image_ids": [img, 99999]})
        assert bad.status_code == 404
    finally:
        unregister()
    assert seen == [(pid, 1)]
