"""Supervisor stats and the audit log, from labeling sessions and op-log rows with known times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from starlette.applications import Starlette

from server.db import transaction
from server.edits import append
from server.hub import leases
from server.image_states import change_state
from server.models import Image, LabelingSession, OpLogEntry, utcnow
from server.permissions import PRESETS, Actor
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.server._rows import make_images

DAY1 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


async def _seed(app: Starlette, pid: int, images: list[int], ana: int, bo: int) -> None:
    async with transaction(app.state.sessions) as session:
        session.add_all([
            # Closed sessions: their active seconds count as stored, on the day they started.
            LabelingSession(project_id=pid, image_id=images[0], user_id=ana, lock_token=1,
                            started_at=DAY1, last_activity_at=DAY1 + timedelta(seconds=90),
                            ended_at=DAY1 + timedelta(seconds=95), active_seconds=95.0),
            LabelingSession(project_id=pid, image_id=images[1], user_id=ana, lock_token=1,
                            started_at=DAY1 + timedelta(hours=1), last_activity_at=DAY1,
                            ended_at=DAY1 + timedelta(hours=1, seconds=30), active_seconds=30.0),
            LabelingSession(project_id=pid, image_id=images[0], user_id=bo, lock_token=2,
                            started_at=DAY2, last_activity_at=DAY2,
                            ended_at=DAY2 + timedelta(seconds=20), active_seconds=20.0),
        ])
        box = {"kind": "create", "object": {"id": "a", "type": "bbox",
                                            "geometry": {"x": 1, "y": 1, "w": 2, "h": 2}}}
        rows: list[tuple[int, int, dict[str, Any]]] = [(images[0], ana, box), (images[0], ana, {"kind": "move_box", "object_id": "a"}),
                (images[1], ana, box), (images[1], ana, {"kind": "add_label", "label": "cat"}),
                (images[0], bo, {"kind": "delete", "object_id": "a"})]
        for image, user, op in rows:
            await append(session, project_id=pid, image_id=image, user_id=user, kind=op["kind"],
                         op=op, inverse=None, client_op_id=None, origin="edit")
        await append(session, project_id=pid, image_id=images[2], user_id=ana, kind="lock",
                     op={"state": "granted"}, inverse=None, client_op_id=None, origin="edit")
    async with transaction(app.state.sessions) as session:  # the op times: two days
        for entry_id, user_id in (await session.execute(select(OpLogEntry.id, OpLogEntry.user_id).where(
                OpLogEntry.project_id == pid))).all():
            when = DAY2 if user_id == bo else DAY1
            await session.execute(update(OpLogEntry).where(OpLogEntry.id == entry_id)
                                  .values(created_at=when))


async def test_stats_per_user_and_day_and_per_image(app: Starlette, admin: Api, users: UserFactory) -> None:
    ana_api, bo_api = await users("ana"), await users("bo")
    pid = await make_project(admin)
    for member in (ana_api, bo_api):
        await add_member(admin, pid, member, role="labeler")
    images = await make_images(app, pid, ["a.png", "b.png", "c.png"])
    ana, bo = ana_api.user["id"], bo_api.user["id"]
    await _seed(app, pid, images, ana, bo)

    body = (await admin.client.get(f"/api/v1/projects/{pid}/stats")).json()
    rows = {(r["user"]["id"], r["day"]): r for r in body["per_user_day"]}
    assert set(rows) == {(ana, "2026-11-24"), (bo, "2026-11-25")}
    a = rows[(ana, "2026-11-24")]
    assert (a["active_seconds"], a["images_labeled"], a["objects_created"], a["objects_edited"],
            a["ops"]) == (125.0, 2, 2, 1, 4)  # the lock row is not an edit
    assert a["objects_per_hour"] == round(2 / (125 / 3600), 1)
    b = rows[(bo, "2026-11-25")]
    assert (b["active_seconds"], b["objects_created"], b["objects_edited"], b["ops"]) == (20.0, 0, 1, 1)
    assert b["objects_per_hour"] is None  # under a minute of work: no rate
    assert {p["image"]: p["active_seconds"] for p in body["per_image"]} == {images[0]: 115.0, images[1]: 30.0}
    assert body["progress"]["total"] == 3

    # Only view_stats may see it.
    assert (await ana_api.client.get(f"/api/v1/projects/{pid}/stats")).status_code == 403


async def test_audit_log_pages_and_filters(app: Starlette, admin: Api, users: UserFactory) -> None:
    ana_api, bo_api = await users("ana"), await users("bo")
    pid = await make_project(admin)
    images = await make_images(app, pid, ["a.png", "b.png", "c.png"])
    ana, bo = ana_api.user["id"], bo_api.user["id"]
    await _seed(app, pid, images, ana, bo)
    url = f"/api/v1/projects/{pid}/ops"
    seen: list[int] = []
    since = 0
    while True:
        page = (await admin.client.get(url, params={"since": since, "limit": 2})).json()
        seen += [o["seq"] for o in page["ops"]]
        assert page["head"] == 6
        if page["next_since"] is None:
            break
        since = page["next_since"]
    assert seen == [1, 2, 3, 4, 5, 6]
    mine = (await admin.client.get(url, params={"user": bo})).json()["ops"]
    assert [(o["user"], o["kind"]) for o in mine] == [(bo, "delete")]
    one = (await admin.client.get(url, params={"image": images[1]})).json()["ops"]
    assert [o["kind"] for o in one] == ["create", "add_label"]
    assert one[0]["created_at"].startswith("2026-11-24")
    bad = await admin.client.get(url, params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"]


async def test_workflow_figures_count_states_not_labels(app: Starlette, admin: Api,
                                                        users: UserFactory) -> None:
    ana_api, sue_api = await users("ana"), await users("sue")
    pid = await make_project(admin)
    await add_member(admin, pid, ana_api, role="labeler")
    await add_member(admin, pid, sue_api, role="supervisor")
    images = await make_images(app, pid, ["a.png", "b.png", "c.png"])
    box = {"id": "o1", "type": "bbox", "label": "cat", "geometry": {"x": 1, "y": 1, "w": 4, "h": 4}}
    body = [{"name": n, "labels": ["street"], "objects": [box] if n != "c.png" else []}
            for n in ("a.png", "b.png", "c.png")]
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                                   json=body)
    assert resp.status_code == 200, resp.text
    ana = Actor(ana_api.user["id"], False, int(PRESETS["labeler"]))
    sue = Actor(sue_api.user["id"], False, int(PRESETS["supervisor"]))
    async with transaction(app.state.sessions) as session:
        for image_id in images[:2]:
            image = await session.get(Image, image_id)
            assert image is not None
            lease = await leases.open_image(session, image, user_id=ana.user_id, connection_id="c1",
                                            ttl=60, take_over=False, now=utcnow(), idle_limit=60)
            assert lease is not None and lease.granted
            await change_state(session, project_id=pid, image_id=image_id, actor=ana, action="done",
                               comment=None, token=lease.token, now=utcnow(), idle_limit=60)
    async with transaction(app.state.sessions) as session:
        for image_id, action in ((images[0], "accept"), (images[1], "reject")):
            await change_state(session, project_id=pid, image_id=image_id, actor=sue,
                               action=action, comment="redo the cat", token=None, now=utcnow(),
                               idle_limit=60)
    stats = (await admin.client.get(f"/api/v1/projects/{pid}/stats")).json()
    # Every image has labels (imported), yet only what people marked counts as work.
    assert stats["progress"]["labeled"] == 3
    flow = stats["workflow"]
    assert flow["states"] == {"new": 1, "in_progress": 0, "done": 0, "accepted": 1, "rejected": 1}
    assert stats["progress"]["states"] == flow["states"]
    by_label = {row["label"]: row for row in flow["per_label"]}
    assert by_label["cat"] == {"label": "cat", "objects": 2, "images": 2, "classified": 0}
    assert by_label["street"]["classified"] == 3 and by_label["street"]["objects"] == 0
    per = {row["user"]["name"]: row for row in flow["per_user"]}
    assert (per["ana"]["accepted"], per["ana"]["rejected"], per["ana"]["rejection_rate"]) == (1, 1, 0.5)
    assert per["sue"]["reviewed"] == 2
    assert flow["review"]["rejection_rate"] == 0.5 and len(flow["review"]["per_day"]) == 1
    # Reviews are no edits: the reviewer, who changed no object, is not in the day table.
    assert all(r["user"]["name"] != "sue" for r in stats["per_user_day"])
