"""Suggestions over REST: accuracy on handwritten digits, accepting them through the op log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from starlette.applications import Starlette

from server.db import transaction
from server.models import Image, ImageLabel, ImageLock, LabelDef, OpLogEntry, utcnow
from tests.ai._digits import DIGITS, Digits
from tests.conftest import Api, UserFactory, add_member

LABELED = 20  # per class


def names(d: Any) -> list[str]:
    return [f"digit {t}" for t in d.target]


async def label_each(api: Api, pid: int, items: dict[int, str]) -> None:
    by_label: dict[str, list[int]] = {}
    for image_id, name in items.items():
        by_label.setdefault(name, []).append(image_id)
    for name, ids in by_label.items():
        resp = await api.client.post(f"/api/v1/projects/{pid}/labels/apply", json={
            "op": {"kind": "add_label", "label": name}, "image_ids": ids})
        assert resp.status_code == 200, resp.text


@DIGITS
async def test_twenty_labeled_per_class_suggest_the_right_digit(
        app: Starlette, admin: Api, prepared: Digits) -> None:
    d = prepared
    truth = dict(zip(d.ids, names(d), strict=True))
    seen: dict[str, int] = {}
    train: dict[int, str] = {}
    for image_id, name in truth.items():
        if seen.get(name, 0) < LABELED:
            train[image_id] = name
            seen[name] = seen.get(name, 0) + 1
    await label_each(admin, d.pid, train)
    test_ids = [i for i in d.ids if i not in train]
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/suggestions",
                                   json={"images": test_ids})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["labeled_examples"] == 200 and body["feature"] == "hog@1"
    assert body["pending"] == [] and len(body["items"]) == len(test_ids)
    top1 = []
    for item in body["items"]:
        scores = [s["score"] for s in item["labels"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        top1.append(item["labels"][0]["label"] == truth[item["image"]])
    assert float(np.mean(top1)) >= 0.90

    # The same through a filter: the unlabeled images.
    by_filter = await admin.client.post(f"/api/v1/projects/{d.pid}/suggestions",
                                        json={"filter": {"labeled": False}})
    assert by_filter.status_code == 200
    assert {i["image"] for i in by_filter.json()["items"]} == set(test_ids)


@DIGITS
async def test_each_label_counts_at_once_and_automatic_labels_do_not(
        app: Starlette, admin: Api, prepared: Digits) -> None:
    d = prepared
    ones = [i for i, t in zip(d.ids, d.target, strict=True) if t == 1]
    fours = [i for i, t in zip(d.ids, d.target, strict=True) if t == 4]
    url = f"/api/v1/projects/{d.pid}/suggestions"
    empty = (await admin.client.post(url, json={"images": [ones[-1]]})).json()
    assert empty["labeled_examples"] == 0 and empty["items"] == [{"image": ones[-1], "labels": []}]
    await label_each(admin, d.pid, {ones[0]: "one"})
    first = (await admin.client.post(url, json={"images": [ones[-1]]})).json()
    assert first["labeled_examples"] == 1 and first["items"][0]["labels"][0]["label"] == "one"
    # Accepted suggestions (source auto) are not examples.
    resp = await admin.client.post(url + "/accept", json={"items": [
        {"image": fours[0], "labels": ["one"]}]})
    assert resp.status_code == 200, resp.text
    assert (await admin.client.post(url, json={"images": [ones[-1]]})).json()["labeled_examples"] == 1
    await label_each(admin, d.pid, {fours[1]: "four"})
    two = (await admin.client.post(url, json={"images": [fours[-1]]})).json()
    assert two["labeled_examples"] == 2 and two["items"][0]["labels"][0]["label"] == "four"


@DIGITS
async def test_accept_adds_auto_labels_through_the_op_log_and_skips_locked_images(
        app: Starlette, admin: Api, prepared: Digits, users: UserFactory) -> None:
    d = prepared
    a, b, c = d.ids[:3]
    other = await users("other")
    await add_member(admin, d.pid, other, "labeler")
    await label_each(admin, d.pid, {a: "zero", d.ids[50]: "one"})
    async with transaction(app.state.sessions) as session:
        await session.execute(insert(ImageLock).values(
            image_id=c, project_id=d.pid, holder_id=other.user["id"], connection_id="x", token=1,
            acquired_at=utcnow(), expires_at=utcnow() + timedelta(minutes=5)))
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/suggestions/accept", json={"items": [
        {"image": a, "labels": ["zero", "one"]}, {"image": b, "labels": ["zero"]},
        {"image": c, "labels": ["zero"]}]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["applied"] == [{"image": a, "labels": ["one"]}, {"image": b, "labels": ["zero"]}]
    assert body["skipped"] == [{"image": c, "reason": "locked"}]
    async with app.state.sessions() as session:
        rows = (await session.execute(
            select(ImageLabel.image_id, LabelDef.name, ImageLabel.source, ImageLabel.is_default)
            .join(LabelDef, LabelDef.id == ImageLabel.label_id)
            .where(ImageLabel.image_id.in_([a, b, c])).order_by(ImageLabel.image_id,
                                                               ImageLabel.created_at))).all()
        assert [tuple(r) for r in rows] == [(a, "zero", "manual", True), (a, "one", "auto", False),
                                            (b, "zero", "auto", True)]
        flags = dict((await session.execute(select(Image.id, Image.auto_labeled).where(
            Image.id.in_([a, b, c])))).all())
        assert flags == {a: True, b: True, c: False}
        ops = (await session.execute(select(OpLogEntry).where(
            OpLogEntry.seq > body["seq"] - 2).order_by(OpLogEntry.seq))).scalars().all()
        assert [(o.image_id, o.kind, o.op, o.inverse, o.origin) for o in ops] == [
            (a, "add_label", {"kind": "add_label", "label": "one", "source": "auto"},
             {"kind": "remove_label", "label": "one"}, "rest"),
            (b, "add_label", {"kind": "add_label", "label": "zero", "source": "auto"},
             {"kind": "remove_label", "label": "zero"}, "rest")]
    # The dashboard's filter finds them.
    listed = (await admin.client.get(f"/api/v1/projects/{d.pid}/images?auto_labeled=true")).json()
    assert {i["id"] for i in listed["images"]} == {a, b}
    # Accepting again changes nothing.
    again = (await admin.client.post(f"/api/v1/projects/{d.pid}/suggestions/accept", json={
        "items": [{"image": b, "labels": ["zero"]}]})).json()
    assert again == {"applied": [], "skipped": [{"image": b, "reason": "already_labeled"}],
                     "seq": None}


@DIGITS
async def test_accept_refuses_bad_input_and_changes_nothing(
        app: Starlette, admin: Api, prepared: Digits, users: UserFactory) -> None:
    d = prepared
    url = f"/api/v1/projects/{d.pid}/suggestions/accept"
    await label_each(admin, d.pid, {d.ids[0]: "zero"})
    unknown = await admin.client.post(url, json={"items": [{"image": d.ids[1], "labels": ["cat"]}]})
    assert unknown.status_code == 422 and "cat" in unknown.json()["error"]["message"]
    missing = await admin.client.post(url, json={"items": [{"image": 999_999, "labels": ["zero"]}]})
    assert missing.status_code == 404
    assert (await admin.client.post(url, json={"items": []})).status_code == 422
    assert (await admin.client.post(url, json={"items": [{"image": d.ids[1], "labels": []}]})
            ).status_code == 422
    assert (await admin.client.post(
        f"/api/v1/projects/{d.pid}/suggestions", json={})).status_code == 422
    viewer, stranger = await users("viewer"), await users("stranger")
    await add_member(admin, d.pid, viewer, "viewer")
    ok = [{"image": d.ids[1], "labels": ["zero"]}]
    assert (await viewer.client.post(url, json={"items": ok})).status_code == 403
    assert (await stranger.client.post(url, json={"items": ok})).status_code == 404
    assert (await stranger.client.post(f"/api/v1/projects/{d.pid}/suggestions",
                                       json={"images": [d.ids[1]]})).status_code == 404
    suggested = await viewer.client.post(f"/api/v1/projects/{d.pid}/suggestions",
                                         json={"images": [d.ids[1]]})
    assert suggested.status_code == 200
    async with app.state.sessions() as session:
        count = len((await session.execute(select(ImageLabel))).all())
        auto = (await session.execute(select(Image.id).where(Image.auto_labeled))).all()
    assert count == 1 and auto == []
