"""next_image: skip rules, the selection and filter, and one image per labeler under concurrency."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import UserFactory, add_member
from tests.hub.conftest import LiveServer, Team, upload_images

BOX = {"kind": "create", "object": {"id": "k", "type": "bbox", "geometry": {"x": 1, "y": 1, "w": 5, "h": 5}}}


async def test_walks_the_selection_in_order_and_ends_with_null(server: LiveServer, team: Team) -> None:
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    picked = []
    after = None
    while True:
        ack = await c.request("next_image", after=after, images=team.images[1:3])
        if ack.get("image") is None:
            break
        assert ack["lock"]["token"] >= 1
        picked.append(ack["image"])
        after = ack["image"]
    assert picked == team.images[1:3]
    back = await c.request("next_image", after=team.images[2], direction="previous", images=team.images[1:3])
    assert back["image"] == team.images[1]
    await c.close()


async def test_skips_images_locked_or_labeled_by_others(server: LiveServer, team: Team,
                                                        users: UserFactory) -> None:
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    alice = await server.connect(team.owner)
    b = await server.connect(bob)
    await alice.request("hello", project=team.project_id)
    await b.request("hello", project=team.project_id)
    first = await alice.request("open_image", image=team.images[0])
    await alice.request("op", image=team.images[0], token=first["lock"]["token"], client_op_id="a1", op=BOX)
    second = await alice.request("open_image", image=team.images[1])
    await alice.request("op", image=team.images[1], token=second["lock"]["token"], client_op_id="a2", op=BOX)
    await alice.request("release_image", image=team.images[1])
    # Defaults: skip images being labeled by others (0 is locked); 1 is labeled but free.
    got = await b.request("next_image")
    assert got["image"] == team.images[1]
    await b.request("release_image", image=team.images[1])
    resp = await bob.client.patch(f"/api/v1/me/settings?project={team.project_id}",
                                  json={"skip_other_users_images": True})
    assert resp.status_code == 200, resp.text
    got = await b.request("next_image")
    assert got["image"] == team.images[2]
    # With both rules off, a locked image comes back read-only: no lock, its holder named.
    await bob.client.patch(f"/api/v1/me/settings?project={team.project_id}",
                           json={"skip_other_users_images": False, "skip_images_being_labeled": False})
    got = await b.request("next_image", images=[team.images[0]])
    assert got["image"] == team.images[0] and "lock" not in got
    assert got["holder"]["id"] == team.owner.user["id"]
    await alice.close()
    await b.close()


async def test_filter_is_validated(server: LiveServer, team: Team) -> None:
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    bad = await c.request("next_image", filter={"labeled": "maybe"})
    assert bad["code"] == "invalid" and "labeled" in bad["message"]
    ok = await c.request("next_image", filter={"labeled": False})
    assert ok["image"] == team.images[0]
    await c.close()


@pytest.mark.slow
async def test_fifty_labelers_at_once_never_share_an_image(server: LiveServer, team: Team,
                                                           users: UserFactory) -> None:
    images = set(team.images) | set(await upload_images(team.owner, team.project_id, 56))
    labelers = []
    for _ in range(50):
        api = await users("lab")
        await add_member(team.owner, team.project_id, api, role="labeler")
        conn = await server.connect(api)
        await conn.request("hello", project=team.project_id)
        labelers.append(conn)
    acks = await asyncio.gather(*(c.request("next_image") for c in labelers))
    got = [a["image"] for a in acks]
    assert all(a["type"] == "ack" and "lock" in a for a in acks)
    assert len(set(got)) == 50 and set(got) <= images
    await asyncio.gather(*(c.close() for c in labelers))
