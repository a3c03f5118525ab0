"""GET /api/v1/projects/{id}/images/{image_id}/objects: the snapshot's objects over REST."""

from __future__ import annotations

from server.settings import Settings
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.hub.conftest import serve, upload_images


def _box(oid: str, x: int, z: int = 0) -> dict[str, object]:
    return {"kind": "create", "object": {"id": oid, "type": "bbox", "label": "car", "z": z,
                                         "geometry": {"x": x, "y": 2, "w": 5, "h": 4}}}


async def test_objects_as_the_snapshot_gives_them(settings: Settings, admin: Api,
                                                  users: UserFactory) -> None:
    project = await make_project(admin)
    image, other_image = await upload_images(admin, project, 2)
    viewer, stranger = await users("viewer"), await users("stranger")
    await add_member(admin, project, viewer, role="viewer")
    url = f"/api/v1/projects/{project}/images/{image}/objects"
    empty = await viewer.client.get(url)
    assert empty.status_code == 200 and empty.json()["objects"] == []
    async with serve(settings) as live:
        c = await live.connect(admin)
        await c.request("hello", project=project)
        token = (await c.request("open_image", image=image))["lock"]["token"]
        await c.event("snapshot")  # the one open_image sends
        await c.request("op", image=image, token=token, client_op_id="a",
                        op={"kind": "batch", "ops": [_box("top", 1, z=5), _box("low", 9)]})
        last = await c.request("op", image=image, token=token, client_op_id="b",
                               op={"kind": "move_box", "object_id": "low", "x": 20, "y": 2,
                                   "w": 5, "h": 4})
        snapshot = (await c.request("subscribe", image=image), await c.event("snapshot"))[1]
        resp = await viewer.client.get(url)  # viewing is enough
        await c.close()
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert snapshot["seq"] == last["seq"]
    assert body == {"image": image, "seq": last["seq"], "objects": snapshot["objects"]}
    assert [o["id"] for o in body["objects"]] == ["low", "top"]  # z order
    assert body["objects"][0]["geometry"] == {"x": 20.0, "y": 2.0, "w": 5.0, "h": 4.0}
    # Not a member, another project's path, no such image: all 404, nothing told apart.
    assert (await stranger.client.get(url)).status_code == 404
    other = await make_project(admin, "Other")
    assert (await admin.client.get(f"/api/v1/projects/{other}/images/{image}/objects")).status_code == 404
    missing = await admin.client.get(f"/api/v1/projects/{project}/images/999999/objects")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await admin.client.get(
        f"/api/v1/projects/{project}/images/{other_image}/objects")).json()["objects"] == []
