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


async def test_hands_out_work_not_done_assigned_first_and_a_review_queue(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    bob, ann, sue = await users("bob"), await users("ann"), await users("sue")
    for member, role in ((bob, "labeler"), (ann, "labeler"), (sue, "supervisor")):
        await add_member(team.owner, team.project_id, member, role=role)
    i0, i1, i2, i3 = team.images
    resp = await team.owner.client.post(f"/api/v1/projects/{team.project_id}/assignments",
                                        json={"user": bob.user["id"], "images": [i3]})
    assert resp.json()["assigned"] == 1
    resp = await team.owner.client.post(f"/api/v1/projects/{team.project_id}/assignments",
                                        json={"user": ann.user["id"], "images": [i2]})
    b, a, s = [await server.connect(x) for x in (bob, ann, sue)]
    for conn in (b, a, s):
        await conn.request("hello", project=team.project_id)
    # Bob: his assigned image first, then the free ones in order; never Ann's.
    got = await b.request("next_image")
    assert got["image"] == i3
    done = await b.request("set_state", image=i3, action="done", token=got["lock"]["token"])
    assert done["state"] == "done"
    got = await b.request("next_image", after=i3)
    assert got["type"] == "ack" and "image" not in got  # nothing after i3 that is his or free
    got = await b.request("next_image")
    assert got["image"] == i0
    await b.request("set_state", image=i0, action="done", token=got["lock"]["token"])
    got = await b.request("next_image", after=i0)
    assert got["image"] == i1  # i2 is Ann's, i3 is done
    # A filter naming a state hands finished work out again.
    got = await b.request("next_image", after=i1, filter={"state": "done"})
    assert got["image"] == i3
    # Ann gets her assigned image; the done ones are not hers to label.
    assert (await a.request("next_image"))["image"] == i2
    # Review queue: a labeler may not use it; Bob's done images go to Sue, not to Bob.
    assert (await a.request("next_image", queue="review"))["code"] == "forbidden"
    assert (await b.request("next_image", queue="review"))["code"] == "forbidden"
    await b.request("release_image", image=i3)
    await b.request("release_image", image=i1)
    review = await s.request("next_image", queue="review")
    assert review["image"] == i0 and review["lock"]["token"] >= 1
    assert (await s.request("next_image", queue="review", after=i0, release=False))["image"] == i3
    owner = await server.connect(team.owner)
    await owner.request("hello", project=team.project_id)
    # Both are open by Sue now: another reviewer gets none of them.
    none_left = await owner.request("next_image", queue="review")
    assert none_left["type"] == "ack" and "image" not in none_left
    listed = (await bob.client.get(f"/api/v1/projects/{team.project_id}/images",
                                   params={"state": "done"})).json()
    assert [i["id"] for i in listed["images"]] == [i0, i3]  # reviewing does not start an image
    for conn in (b, a, s, owner):
        await conn.close()
