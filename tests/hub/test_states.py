"""set_state over the socket: the workflow end to end, its refusals, and the accept/reopen race."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from server.db import transaction
from server.models import LabelingSession
from tests.conftest import Api, UserFactory, add_member
from tests.hub.conftest import LiveServer, Team


async def _image(api: Api, image_id: int) -> dict[str, Any]:
    resp = await api.client.get(f"/api/v1/images/{image_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def _state_ops(api: Api, project_id: int, image_id: int) -> list[dict[str, Any]]:
    resp = await api.client.get(f"/api/v1/projects/{project_id}/ops", params={"image": image_id})
    return [r["op"] for r in resp.json()["ops"] if r["kind"] == "state"]


async def test_done_review_reject_fix_accept_reopen(server: LiveServer, team: Team,
                                                    users: UserFactory) -> None:
    bob, sue = await users("bob"), await users("sue")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    await add_member(team.owner, team.project_id, sue, role="supervisor")
    img = team.images[0]
    b, s = await server.connect(bob), await server.connect(sue)
    await b.request("hello", project=team.project_id)
    await s.request("hello", project=team.project_id)
    assert (await _image(bob, img))["state"] == "new"

    opened = await b.request("open_image", image=img)
    token = opened["lock"]["token"]
    # The grant started the image (in its own log row); the supervisor, on no image, hears it.
    started = await s.event("lock", image=img)
    assert started["state"] == "granted" and started["image_state"] == "in_progress"
    no_lock = await b.request("set_state", image=img, action="done")
    assert no_lock["code"] == "lock_required"
    stale = await b.request("set_state", image=img, action="done", token=token + 5)
    assert stale["code"] == "lock_required"
    assert (await _image(bob, img))["state"] == "in_progress"  # nothing changed
    too_soon = await s.request("set_state", image=img, action="accept")
    assert too_soon["code"] == "conflict" and "in progress" in too_soon["message"]

    done = await b.request("set_state", image=img, action="done", token=token)
    assert done["type"] == "ack" and done["state"] == "done" and done["seq"] > 0
    assert (await s.event("op", image=img))["op"]["to"] == "done"
    assert (await b.request("set_state", image=img, action="accept"))["code"] == "forbidden"
    assert (await s.request("set_state", image=img, action="reject"))["code"] == "invalid"
    rejected = await s.request("set_state", image=img, action="reject", comment="the tail is missing")
    assert rejected["state"] == "rejected"
    item = await _image(bob, img)  # the labeler reads the comment, and who wrote it
    assert item["state"] == "rejected" and item["review"]["comment"] == "the tail is missing"
    assert item["review"]["by"]["name"] == "sue" and item["done_by"]["name"] == "bob"

    await b.request("release_image", image=img)
    token = (await b.request("open_image", image=img))["lock"]["token"]  # back in progress
    assert (await _image(bob, img))["state"] == "in_progress"
    await b.request("set_state", image=img, action="done", token=token)
    assert (await s.request("set_state", image=img, action="accept"))["state"] == "accepted"
    assert (await s.request("set_state", image=img, action="reopen"))["code"] == "forbidden"
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    assert (await c.request("set_state", image=img, action="reopen", comment="ears too"))["state"] \
        == "in_progress"

    actions = [op["action"] for op in await _state_ops(sue, team.project_id, img)]
    assert actions == ["done", "reject", "done", "accept", "reopen"]
    stats = (await team.owner.client.get(f"/api/v1/projects/{team.project_id}/stats")).json()
    flow = stats["workflow"]
    assert flow["states"] == {"new": 3, "in_progress": 1, "done": 0, "accepted": 0, "rejected": 0}
    assert flow["review"]["accepted"] == 1 and flow["review"]["rejected"] == 1
    assert flow["review"]["rejection_rate"] == 0.5
    per = {row["user"]["name"]: row for row in flow["per_user"]}
    assert per["sue"]["reviewed"] == 2
    assert per["bob"]["reviews_received"] == 2 and per["bob"]["rejection_rate"] == 0.5
    assert stats["progress"]["states"]["in_progress"] == 1
    for conn in (b, s, c):
        await conn.close()


async def test_accept_and_reopen_at_once_one_wins(server: LiveServer, team: Team,
                                                  users: UserFactory) -> None:
    sue = await users("sue")
    await add_member(team.owner, team.project_id, sue, role="supervisor")
    img = team.images[1]
    owner, s = await server.connect(team.owner), await server.connect(sue)
    await owner.request("hello", project=team.project_id)
    await s.request("hello", project=team.project_id)
    token = (await owner.request("open_image", image=img))["lock"]["token"]
    await owner.request("set_state", image=img, action="done", token=token)
    accept, reopen = await asyncio.gather(
        s.request("set_state", image=img, action="accept", expect="done"),
        owner.request("set_state", image=img, action="reopen", expect="done"))
    outcomes = sorted(r.get("code", r["type"]) for r in (accept, reopen))
    assert outcomes == ["ack", "conflict"]
    after_done = [op["action"] for op in await _state_ops(sue, team.project_id, img)][1:]
    assert len(after_done) == 1 and after_done[0] in ("accept", "reopen")
    winner = accept if accept["type"] == "ack" else reopen
    assert (await _image(sue, img))["state"] == winner["state"]
    await owner.close()
    await s.close()


async def test_rest_state_change_and_assignment(server: LiveServer, team: Team,
                                                users: UserFactory) -> None:
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    pid, img = team.project_id, team.images[2]
    # REST: done without the lock; a labeler may not assign; a non-member cannot be assigned.
    resp = await bob.client.post(f"/api/v1/images/{img}/state", json={"action": "done"})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "lock_required"
    resp = await bob.client.post(f"/api/v1/images/{img}/state", json={"action": "finish"})
    assert resp.status_code == 422
    resp = await bob.client.post(f"/api/v1/projects/{pid}/assignments",
                                 json={"user": bob.user["id"], "images": [img]})
    assert resp.status_code == 403
    outsider = await users("outsider")
    resp = await team.owner.client.post(f"/api/v1/projects/{pid}/assignments",
                                        json={"user": outsider.user["id"], "images": [img]})
    assert resp.status_code == 422
    resp = await team.owner.client.post(f"/api/v1/projects/{pid}/assignments",
                                        json={"user": bob.user["id"], "filter": {"ids": team.images[2:]}})
    assert resp.status_code == 200 and resp.json()["assigned"] == 2
    listed = (await bob.client.get(f"/api/v1/projects/{pid}/images",
                                   params={"assignee": bob.user["id"]})).json()
    assert [i["id"] for i in listed["images"]] == team.images[2:]
    assert listed["images"][0]["assignee"]["id"] == bob.user["id"]
    # Manager path over REST (no lock needed to reopen; done needs one: open over the socket).
    c = await server.connect(team.owner)
    await c.request("hello", project=pid)
    token = (await c.request("open_image", image=img))["lock"]["token"]
    resp = await team.owner.client.post(f"/api/v1/images/{img}/state",
                                        json={"action": "done", "token": token})
    assert resp.status_code == 200 and resp.json()["state"] == "done"
    assert (await c.event("op", image=img))["op"]["action"] == "done"
    filtered = (await bob.client.get(f"/api/v1/projects/{pid}/images",
                                     params={"state": "done,accepted"})).json()
    assert [i["id"] for i in filtered["images"]] == [img]
    export = await team.owner.client.get(f"/api/v1/projects/{pid}/export", params={"format": "csv"})
    assert export.status_code == 200 and "img002.png,,,done" in export.text.splitlines()
    await c.close()


async def test_marking_done_counts_as_labeling_time(server: LiveServer, team: Team) -> None:
    """Marking done is activity on the image's labeling session: the time since the last edit
    (within the idle limit) is counted, as an edit's would be."""
    img = team.images[1]
    ws = await server.connect(team.owner)
    await ws.request("hello", project=team.project_id)
    token = (await ws.request("open_image", image=img))["lock"]["token"]
    sessions = server.app.state.sessions
    async with transaction(sessions) as session:
        # Forty seconds of work since the session began, without waiting forty seconds.
        row = (await session.execute(select(LabelingSession).where(
            LabelingSession.image_id == img, LabelingSession.lock_token == token))).scalar_one()
        before = row.active_seconds
        await session.execute(update(LabelingSession).where(LabelingSession.id == row.id).values(
            started_at=row.started_at - timedelta(seconds=40),
            last_activity_at=row.last_activity_at - timedelta(seconds=40)))
    done = await ws.request("set_state", image=img, action="done", token=token)
    assert done["state"] == "done"
    async with transaction(sessions) as session:
        after = (await session.execute(select(LabelingSession.active_seconds).where(
            LabelingSession.image_id == img, LabelingSession.lock_token == token))).scalar_one()
    # The 40 s, plus however long this test took between the two (no upper bound on a loaded
    # machine but the idle limit, past which a gap stops counting).
    assert 39 <= after - before < 120
    await ws.close()
