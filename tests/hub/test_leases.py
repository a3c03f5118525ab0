"""Leases in the database: expiry frees an image, labeling time is recorded, stats report it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from server.settings import Settings
from tests.conftest import UserFactory, add_member, make_settings
from tests.hub.conftest import LiveServer, Team

BOX = {"kind": "create", "object": {"id": "t", "type": "bbox", "geometry": {"x": 1, "y": 1, "w": 5, "h": 5}}}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Leases of ``request.param`` seconds where a test watches expiry, else the default lease
    (a short one could lapse between two messages on a slow machine)."""
    ttl = getattr(request, "param", None)
    overrides = {"lock_ttl_seconds": ttl} if ttl is not None else {}
    return make_settings(database_url, tmp_path / "data", **overrides)


async def lease_expiry(team: Team, image: int) -> datetime:
    resp = await team.owner.client.get(f"/api/v1/images/{image}")
    assert resp.status_code == 200, resp.text
    return datetime.fromisoformat(resp.json()["lock"]["expires_at"])


@pytest.mark.parametrize("settings", [1.0], indirect=True, ids=["1s-lease"])
async def test_a_vanished_holder_lease_expires_and_others_may_open(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    watcher = await server.connect(bob)
    await watcher.request("hello", project=team.project_id)
    holder = await server.connect(team.owner)
    await holder.request("hello", project=team.project_id)
    opened = await holder.request("open_image", image=team.images[0])
    await holder.request("op", image=team.images[0], token=opened["lock"]["token"], client_op_id="t1", op=BOX)
    # The holder goes quiet (no heartbeats); its lease lapses and the sweeper frees it.
    expired = await watcher.event("lock", image=team.images[0], state="expired")
    assert "holder" not in expired
    late = await holder.request("op", image=team.images[0], token=opened["lock"]["token"],
                                client_op_id="t2", op={"kind": "delete", "object_id": "t"})
    assert late["code"] in ("no_lock", "lock_expired")
    got = await watcher.request("open_image", image=team.images[0])
    assert got["lock"]["token"] > opened["lock"]["token"]
    await holder.close()
    await watcher.close()


async def test_heartbeats_renew_the_lease_and_stats_count_time(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    c = await server.connect(team.owner)
    await c.request("hello", project=team.project_id)
    opened = await c.request("open_image", image=team.images[1])
    token = opened["lock"]["token"]
    expiry = datetime.fromisoformat(opened["lock"]["expires_at"])
    for i in range(3):
        assert (await c.request("heartbeat", active=True))["type"] == "ack"
        renewed = await lease_expiry(team, team.images[1])
        assert renewed > expiry  # the heartbeat moved the expiry on
        expiry = renewed
        ack = await c.request("op", image=team.images[1], token=token, client_op_id=f"h{i}",
                              op={**BOX, "object": {**BOX["object"], "id": f"h{i}"}})
        assert ack["type"] == "ack", ack
    await c.request("release_image", image=team.images[1])
    stats = (await team.owner.client.get(f"/api/v1/projects/{team.project_id}/stats")).json()
    [row] = [r for r in stats["per_user_day"] if r["user"]["id"] == team.owner.user["id"]]
    assert row["objects_created"] == 3 and row["images_labeled"] == 1 and row["ops"] == 3
    assert row["active_seconds"] >= 0
    assert any(p["image"] == team.images[1] for p in stats["per_image"])
    assert stats["progress"]["total"] == 4 and stats["progress"]["labeled"] == 1
    audit = (await team.owner.client.get(
        f"/api/v1/projects/{team.project_id}/ops?image={team.images[1]}")).json()
    kinds = [o["kind"] for o in audit["ops"]]
    assert kinds.count("create") == 3 and kinds[0] == "lock" and kinds[-1] == "lock"
    labeler = await users("lab")
    await add_member(team.owner, team.project_id, labeler, role="labeler")
    assert (await labeler.client.get(f"/api/v1/projects/{team.project_id}/ops")).status_code == 403
    await c.close()
