"""Deleting many images at once: ids or a whole filter, the confirmed number, images in use kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.applications import Starlette

from server import image_bulk
from server.db import transaction
from server.models import ImageLock, utcnow
from server.settings import Settings
from tests.conftest import Api, add_member, make_project
from tests.server._images import files, png, stored_files, upload


async def _images(admin: Api, pid: int, n: int, labels: str | None = None) -> list[int]:
    extra = {"labels": labels} if labels else {}
    seed = 1000 * pid + 100 * len(labels or "")  # distinct bytes: no upload is a duplicate
    resp = await upload(admin, pid, files(*((f"i{i}.png", png(seed + i)) for i in range(n))),
                        **extra)
    return [r["image"]["id"] for r in resp.json()["results"]]


async def _total(admin: Api, pid: int) -> int:
    return int((await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["total"])


async def test_select_all_matching_deletes_every_match_not_one_page(
        admin: Api, settings: Settings, monkeypatch: Any) -> None:
    monkeypatch.setattr(image_bulk, "CHUNK", 2)  # several transactions, as a large delete has
    pid = await make_project(admin)
    cats = await _images(admin, pid, 5, labels="cat")
    dogs = await _images(admin, pid, 2, labels="dogs")
    url = f"/api/v1/projects/{pid}/images/delete"

    # The filter now matches 5, not the 4 the person confirmed: nothing goes.
    resp = await admin.client.post(url, json={"filter": {"label": "cat"}, "expected": 4})
    assert resp.status_code == 409
    assert resp.json()["error"]["details"] == {"count": 5}
    assert await _total(admin, pid) == 7

    resp = await admin.client.post(url, json={"filter": {"label": "cat"}, "expected": 5})
    assert resp.status_code == 200
    assert resp.json() == {"deleted": 5, "skipped": []}
    listed = (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["images"]
    assert sorted(i["id"] for i in listed) == sorted(dogs)
    assert len(stored_files(settings)) == 2 * 2  # originals and thumbnails of the dogs only
    assert [(await admin.client.get(f"/api/v1/images/{c}")).status_code for c in cats] == [404] * 5

    resp = await admin.client.post(url, json={"image_ids": dogs[:1]})
    assert resp.json() == {"deleted": 1, "skipped": []}
    assert await _total(admin, pid) == 1


async def test_images_being_labeled_are_kept_and_bad_requests_change_nothing(
        app: Starlette, admin: Api, users: Any) -> None:
    pid = await make_project(admin)
    other = await make_project(admin, "other")
    a, b, c = await _images(admin, pid, 3)
    foreign = (await _images(admin, other, 1))[0]
    bob, viewer = await users("bob"), await users("viewer")
    await add_member(admin, pid, bob, privileges=["view", "label"])
    await add_member(admin, pid, viewer, privileges=["view"])
    async with transaction(app.state.sessions) as session:
        now = utcnow()
        session.add(ImageLock(image_id=b, project_id=pid, holder_id=bob.user["id"], token=1,
                              acquired_at=now, expires_at=now + timedelta(minutes=1)))
    url = f"/api/v1/projects/{pid}/images/delete"

    bad = [({"image_ids": [a], "filter": {}}, 422), ({}, 422), ({"image_ids": [a, foreign]}, 404),
           ({"image_ids": ["x"]}, 422), ({"filter": {"labeled": "maybe"}}, 422)]
    for body, status in bad:
        resp = await admin.client.post(url, json=body)
        assert resp.status_code == status, body
        assert set(resp.json()["error"]) >= {"code", "message"}
    assert (await viewer.client.post(url, json={"image_ids": [a]})).status_code == 403
    assert await _total(admin, pid) == 3

    resp = await admin.client.post(url, json={"filter": {}, "expected": 3})
    assert resp.json() == {"deleted": 2, "skipped": [{"image": b, "reason": "being_labeled"}]}
    listed = (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["images"]
    assert [i["id"] for i in listed] == [b]
    assert c not in [i["id"] for i in listed]
    assert await _total(admin, other) == 1


async def test_a_file_goes_with_the_last_image_that_holds_it(admin: Api, settings: Settings) -> None:
    # One chunk: two images with the same bytes (in two projects) and one of its own. Deleting
    # both holders of a content removes its files; a content another image holds keeps them.
    pid, other = await make_project(admin), await make_project(admin, "other")
    shared, alone, kept = png(7001), png(7002), png(7003)
    mine = [r["image"]["id"] for r in (await upload(
        admin, pid, files(("s.png", shared), ("a.png", alone), ("k.png", kept)))).json()["results"]]
    theirs = [r["image"]["id"] for r in (await upload(
        admin, other, files(("s.png", shared), ("k.png", kept)))).json()["results"]]
    assert len(stored_files(settings)) == 3 * 2
    resp = await admin.client.post(f"/api/v1/projects/{other}/images/delete",
                                   json={"image_ids": theirs[:1]})
    assert resp.json() == {"deleted": 1, "skipped": []}
    assert len(stored_files(settings)) == 3 * 2  # the shared bytes: project pid still holds them
    resp = await admin.client.post(f"/api/v1/projects/{pid}/images/delete",
                                   json={"filter": {}, "expected": 3})
    assert resp.json() == {"deleted": 3, "skipped": []}
    assert len(stored_files(settings)) == 1 * 2  # only what the other project's k.png holds
    assert (await admin.client.get(f"/api/v1/images/{theirs[1]}/file")).status_code == 200
    assert [(await admin.client.get(f"/api/v1/images/{i}")).status_code for i in mine] == [404] * 3
