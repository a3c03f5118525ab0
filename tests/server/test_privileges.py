"""Every privilege flag: a member without it gets 403, the same member with it succeeds.

Socket-only flags (``label`` on ops, ``review`` on lock take-over) are also covered in tests/hub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import cv2
import httpx
import numpy as np
import pytest

from tests.conftest import Api, UserFactory, add_member, make_project


def png_bytes(seed: int = 0) -> bytes:
    img = np.full((32, 48, 3), 40 + seed, np.uint8)
    cv2.circle(img, (20, 16), 8, (0, 200, 255), -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


@dataclass
class World:
    owner: Api
    member: Api
    project_id: int
    image_id: int
    label_id: int


async def upload(api: Api, project_id: int, seed: int) -> httpx.Response:
    return await api.client.post(
        f"/api/v1/projects/{project_id}/images",
        files=[("files", (f"img{seed}.png", png_bytes(seed), "image/png"))],
        data={"labels": "cat"},
    )


@pytest.fixture
async def world(users: UserFactory) -> World:
    owner, member = await users("owner"), await users("member")
    pid = await make_project(owner)
    resp = await upload(owner, pid, 1)
    assert resp.status_code == 201, resp.text
    image_id = resp.json()["results"][0]["image"]["id"]
    labels = (await owner.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
    await add_member(owner, pid, member, privileges=["view"])
    return World(owner, member, pid, image_id, labels[0]["id"])


Call = Callable[[World], Awaitable[httpx.Response]]

CALLS: dict[str, Call] = {
    "label": lambda w: w.member.client.post(
        f"/api/v1/projects/{w.project_id}/labels/apply",
        json={"op": {"kind": "add_label", "label": "dog"}, "image_ids": [w.image_id]}),
    "upload": lambda w: upload(w.member, w.project_id, 2),
    "delete": lambda w: w.member.client.delete(f"/api/v1/images/{w.image_id}"),
    "manage_labels": lambda w: w.member.client.patch(
        f"/api/v1/projects/{w.project_id}/labels/{w.label_id}", json={"color": "#ff0000"}),
    "import_export": lambda w: w.member.client.get(f"/api/v1/projects/{w.project_id}/export?format=csv"),
    "manage_members": lambda w: w.member.client.patch(
        f"/api/v1/projects/{w.project_id}/members/{w.member.user['id']}", json={"role": "viewer"}),
    "view_stats": lambda w: w.member.client.get(f"/api/v1/projects/{w.project_id}/stats"),
}


async def _grant(w: World, flags: list[str]) -> None:
    resp = await w.owner.client.patch(
        f"/api/v1/projects/{w.project_id}/members/{w.member.user['id']}", json={"privileges": flags})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("flag", sorted(CALLS))
async def test_flag_is_required_and_sufficient(world: World, flag: str) -> None:
    denied = await CALLS[flag](world)
    assert denied.status_code == 403, denied.text
    assert denied.json()["error"]["code"] == "forbidden"
    await _grant(world, ["view", flag])
    granted = await CALLS[flag](world)
    assert 200 <= granted.status_code < 300, granted.text


async def test_view_is_required_to_see_anything(world: World) -> None:
    await _grant(world, [])
    for path in (f"/api/v1/projects/{world.project_id}", f"/api/v1/projects/{world.project_id}/images",
                 f"/api/v1/images/{world.image_id}/file"):
        assert (await world.member.client.get(path)).status_code in (403, 404), path
    assert (await world.member.client.get(f"/api/v1/projects/{world.project_id}")).status_code == 403
    await _grant(world, ["view"])
    for path in (f"/api/v1/projects/{world.project_id}", f"/api/v1/projects/{world.project_id}/images",
                 f"/api/v1/images/{world.image_id}/file"):
        assert (await world.member.client.get(path)).status_code == 200, path
