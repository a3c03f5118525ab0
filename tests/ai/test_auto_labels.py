"""Confirming labels a model added (``POST /auto-labels/confirm``, server/ai/auto_labels.py): the
person's review makes them manual labels through the op log; locks, privileges, bad input."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import insert, select
from starlette.applications import Starlette

from server.db import transaction
from server.models import Image, ImageLabel, ImageLock, LabelDef, OpLogEntry, utcnow
from tests.ai._digits import cancel_queued, png, upload
from tests.conftest import Api, UserFactory, add_member, make_project


async def test_confirm_turns_auto_labels_into_the_reviewers_own(app: Starlette, admin: Api,
                                                                 users: UserFactory) -> None:
    pid = await make_project(admin)
    tiles = [png(np.full((8, 8), v, np.uint8)) for v in (10, 120, 240)]
    a, b, c = (int(x["id"]) for x in await upload(
        admin, pid, [(f"{i}.png", t) for i, t in enumerate(tiles)]))
    await cancel_queued(admin, pid)
    for name in ("cat", "dog"):
        assert (await admin.client.post(f"/api/v1/projects/{pid}/labels",
                                        json={"name": name})).status_code in (200, 201)
    # a: a person's "dog" first, then the model's "cat"; b: the model's "cat" only; c: nothing.
    assert (await admin.client.post(f"/api/v1/projects/{pid}/labels/apply", json={
        "op": {"kind": "add_label", "label": "dog"}, "image_ids": [a]})).status_code == 200
    accepted = await admin.client.post(f"/api/v1/projects/{pid}/suggestions/accept", json={
        "items": [{"image": a, "labels": ["cat"]}, {"image": b, "labels": ["cat"]}]})
    assert accepted.status_code == 200, accepted.text
    url = f"/api/v1/projects/{pid}/auto-labels/confirm"

    viewer, other = await users("viewer"), await users("other")
    await add_member(admin, pid, viewer, "viewer")
    await add_member(admin, pid, other, "labeler")
    assert (await viewer.client.post(url, json={"images": [a]})).status_code == 403
    assert (await admin.client.post(url, json={"images": []})).status_code == 422
    assert (await admin.client.post(url, json={"images": [999_999]})).status_code == 404
    async with transaction(app.state.sessions) as session:  # b is open in someone else's tool
        await session.execute(insert(ImageLock).values(
            image_id=b, project_id=pid, holder_id=other.user["id"], connection_id="x", token=1,
            acquired_at=utcnow(), expires_at=utcnow() + timedelta(minutes=5)))

    resp = await admin.client.post(url, json={"images": [a, b, c]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["confirmed"] == [{"image": a, "labels": ["cat"], "objects": []}]
    assert body["skipped"] == [{"image": b, "reason": "locked"},
                               {"image": c, "reason": "nothing_to_confirm"}]
    async with app.state.sessions() as session:
        rows = (await session.execute(
            select(ImageLabel.image_id, LabelDef.name, ImageLabel.source, ImageLabel.is_default,
                   ImageLabel.created_by)
            .join(LabelDef, LabelDef.id == ImageLabel.label_id)
            .where(ImageLabel.image_id.in_([a, b])).order_by(ImageLabel.image_id, LabelDef.name))).all()
        op = (await session.execute(select(OpLogEntry).where(OpLogEntry.seq == body["seq"]))).scalar_one()
        flags = dict((await session.execute(select(Image.id, Image.auto_labeled)
                                            .where(Image.id.in_([a, b])))).all())
    me = admin.user["id"]
    # The person's default ("dog") stays the default; "cat" is now a manual label by the reviewer.
    assert [tuple(r) for r in rows] == [(a, "cat", "manual", False, me), (a, "dog", "manual", True, me),
                                        (b, "cat", "auto", True, me)]
    assert (op.image_id, op.kind, op.origin) == (a, "set_labels", "rest")
    assert [x["source"] for x in op.inverse["labels"]] == ["manual", "auto"]  # undo restores it
    assert flags == {a: False, b: True}
