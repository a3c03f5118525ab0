"""Predictions over REST: a trained model predicts digits, people add or dismiss what it says
(through the op log, source auto), stale predictions after a rename, a corrupted model, the
built-in ImageNet model on a cat photo with its mapping, privileges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from skimage import data as skdata
from sqlalchemy import insert, select, update
from starlette.applications import Starlette

from server.db import transaction
from server.models import AiModelVersion, Image, ImageLabel, ImageLock, LabelDef, OpLogEntry, utcnow
from tests.ai._digits import cancel_queued, png, upload
from tests.ai._models import predict, small_digits, train
from tests.conftest import Api, UserFactory, add_member, make_project


async def pending(api: Api, pid: int, **query: Any) -> list[dict[str, Any]]:
    resp = await api.client.get(f"/api/v1/projects/{pid}/predictions",
                                params={"status": "pending", **query})
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]  # type: ignore[no-any-return]


async def labels_of(app: Starlette, image_ids: list[int]) -> list[tuple[int, str, str]]:
    async with app.state.sessions() as session:
        rows = await session.execute(
            select(ImageLabel.image_id, LabelDef.name, ImageLabel.source)
            .join(LabelDef, LabelDef.id == ImageLabel.label_id)
            .where(ImageLabel.image_id.in_(image_ids))
            .order_by(ImageLabel.image_id, ImageLabel.created_at))
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_predict_add_dismiss_and_stale_after_a_rename(app: Starlette, admin: Api,
                                                            users: UserFactory) -> None:
    d = await small_digits(admin)
    assert (await train(app, admin, d.pid, name="digits")).status == "done"
    state = await predict(app, admin, d.pid, model="digits", filter={"labeled": False})
    assert state.status == "done", state
    assert state.result == {"model": state.params["model_id"], "version": 1, "predicted": 30,
                            "failed": []}
    items = await pending(admin, d.pid, model="digits")
    assert sorted(i["image"] for i in items) == sorted(d.unlabeled)
    truth = {i: f"digit {t}" for i, t in zip(d.ids, d.target, strict=True)}
    right = 0
    for item in items:
        assert item["model_name"] == "digits" and item["version"] == 1 and item["objects"] == []
        assert item["status"] == "pending" and item["stale"] is False
        scores = [x["score"] for x in item["labels"]]
        assert scores == sorted(scores, reverse=True) and len(scores) >= 5
        assert set(item["confident"]) <= {x["label"] for x in item["labels"]}
        right += item["labels"][0]["label"] == truth[item["image"]]
    assert right / len(items) >= 0.7
    # Predicting again skips what this version already predicted.
    again = await predict(app, admin, d.pid, model="digits", images=d.unlabeled[:3])
    assert again.result is not None and again.result["predicted"] == 0

    # Add two (one locked by someone else), dismiss one.
    a, b, c, e = (i["image"] for i in items[:4])
    other = await users("other")
    await add_member(admin, d.pid, other, "labeler")
    async with transaction(app.state.sessions) as session:
        await session.execute(insert(ImageLock).values(
            image_id=c, project_id=d.pid, holder_id=other.user["id"], connection_id="x", token=1,
            acquired_at=utcnow(), expires_at=utcnow() + timedelta(minutes=5)))
    top = {i["image"]: i["labels"][0]["label"] for i in items}
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/predictions/add", json={
        "model": "digits", "items": [{"image": x, "labels": [top[x]]} for x in (a, b, c)]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["applied"] == [{"image": a, "labels": [top[a]]}, {"image": b, "labels": [top[b]]}]
    assert body["skipped"] == [{"image": c, "reason": "locked"}]
    assert await labels_of(app, [a, b, c]) == [(a, top[a], "auto"), (b, top[b], "auto")]
    async with app.state.sessions() as session:
        ops = (await session.execute(select(OpLogEntry).where(OpLogEntry.seq > body["seq"] - 2)
                                     .order_by(OpLogEntry.seq))).scalars().all()
        assert [(o.image_id, o.kind, o.op["source"], o.origin) for o in ops] == [
            (a, "add_label", "auto", "rest"), (b, "add_label", "auto", "rest")]
        flags = dict((await session.execute(select(Image.id, Image.auto_labeled).where(
            Image.id.in_([a, b, c])))).all())
    assert flags == {a: True, b: True, c: False}
    dismissed = await admin.client.post(f"/api/v1/projects/{d.pid}/predictions/dismiss",
                                        json={"images": [e]})
    assert dismissed.json() == {"dismissed": 1}
    statuses = {i["image"]: i["status"] for i in (await admin.client.get(
        f"/api/v1/projects/{d.pid}/predictions", params={"model": "digits"})).json()["items"]}
    assert (statuses[a], statuses[b], statuses[c], statuses[e]) == (
        "added", "added", "pending", "dismissed")
    assert len(await pending(admin, d.pid)) == 27
    # Undo works on an added prediction like on any edit: the op has its inverse.
    assert ops[0].inverse == {"kind": "remove_label", "label": top[a]}

    # A label renamed: the model's predictions are stale, and adding them is refused.
    labels = (await admin.client.get(f"/api/v1/projects/{d.pid}/labels")).json()["labels"]
    three = next(x for x in labels if x["name"] == "digit 3")
    assert (await admin.client.patch(f"/api/v1/projects/{d.pid}/labels/{three['id']}",
                                     json={"name": "three"})).status_code == 200
    after = await pending(admin, d.pid, model="digits")
    assert after and all(i["stale"] for i in after)
    f = after[0]["image"]
    stale = await admin.client.post(f"/api/v1/projects/{d.pid}/predictions/add", json={
        "items": [{"image": f, "labels": ["digit 0"]}]})
    assert stale.json()["skipped"] == [{"image": f, "reason": "stale"}]
    model = (await admin.client.get(f"/api/v1/projects/{d.pid}/models/digits")).json()
    assert model["versions"][0]["stale"] is True


async def test_a_corrupted_model_fails_the_predict_job_clearly(app: Starlette, admin: Api) -> None:
    d = await small_digits(admin, classes=3)
    assert (await train(app, admin, d.pid, name="m")).status == "done"
    async with transaction(app.state.sessions) as session:
        row = (await session.execute(select(AiModelVersion))).scalar_one()
        broken = bytearray(row.weights)
        broken[10] ^= 0xFF
        await session.execute(update(AiModelVersion).values(weights=bytes(broken)))
    state = await predict(app, admin, d.pid, model="m", images=d.unlabeled)
    assert state.status == "failed"
    assert state.error is not None and "model 'm' version 1 is corrupted" in state.error
    assert "checksum" in state.error
    assert await pending(admin, d.pid) == []
    resp = await admin.client.get(f"/api/v1/projects/{d.pid}/models/m/download")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "model_corrupted"


async def test_builtin_model_says_cat_for_chelsea_and_the_mapping_applies(
        app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    items = await upload(admin, pid, [("chelsea.png", png(skdata.chelsea()[:, :, ::-1])),
                                      ("coffee.png", png(skdata.coffee()[:, :, ::-1]))])
    await cancel_queued(admin, pid)
    cat, coffee = (int(i["id"]) for i in items)
    state = await predict(app, admin, pid, model="imagenet", images=[cat, coffee])
    assert state.status == "done", state
    before = {i["image"]: i for i in await pending(admin, pid, model="imagenet")}
    assert before[cat]["classes"][0]["label"] == "Egyptian cat"
    assert before[cat]["classes"][0]["score"] > 0.5
    assert before[coffee]["classes"][0]["label"] == "espresso"
    assert before[cat]["labels"] == [] and before[cat]["version"] == 0  # nothing mapped yet

    resp = await admin.client.put(f"/api/v1/projects/{pid}/models/imagenet/mapping", json={
        "mapping": {"Egyptian cat": "cat", "tabby": "cat", "tiger cat": "cat"}})
    assert resp.status_code == 200, resp.text
    after = {i["image"]: i for i in await pending(admin, pid, model="imagenet")}
    assert after[cat]["labels"][0]["label"] == "cat" and after[cat]["labels"][0]["score"] > 0.8
    assert after[cat]["confident"] == ["cat"] and after[coffee]["labels"] == []
    added = await admin.client.post(f"/api/v1/projects/{pid}/predictions/add", json={
        "model": "imagenet", "items": [{"image": cat, "labels": ["cat"]}]})
    assert added.json()["applied"] == [{"image": cat, "labels": ["cat"]}]
    assert await labels_of(app, [cat]) == [(cat, "cat", "auto")]

    # Renaming the label the mapping points at makes the predictions using it stale.
    labels = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
    await admin.client.patch(f"/api/v1/projects/{pid}/labels/{labels[0]['id']}",
                             json={"name": "kitty"})
    listed = {i["image"]: i for i in (await admin.client.get(
        f"/api/v1/projects/{pid}/predictions")).json()["items"]}
    assert listed[cat]["stale"] is True and listed[coffee]["stale"] is False


async def test_bad_input_and_privileges(app: Starlette, admin: Api, users: UserFactory) -> None:
    pid = await make_project(admin)
    items = await upload(admin, pid, [("chelsea.png", png(skdata.chelsea()[:, :, ::-1]))])
    await cancel_queued(admin, pid)
    image = int(items[0]["id"])
    url = f"/api/v1/projects/{pid}/predictions"
    labeler, viewer, stranger = await users("labeler"), await users("viewer"), await users("x")
    await add_member(admin, pid, labeler, "labeler")
    await add_member(admin, pid, viewer, "viewer")
    body = {"model": "imagenet", "images": [image]}
    assert (await viewer.client.post(url, json=body)).status_code == 403
    assert (await stranger.client.post(url, json=body)).status_code == 404
    assert (await stranger.client.get(url)).status_code == 404
    assert (await viewer.client.get(url)).status_code == 200
    add = {"items": [{"image": image, "labels": ["cat"]}]}
    assert (await viewer.client.post(f"{url}/add", json=add)).status_code == 403
    assert (await viewer.client.post(f"{url}/dismiss", json={"images": [image]})).status_code == 403
    assert (await labeler.client.post(url, json=body)).status_code == 202
    for bad in ({"model": "imagenet"}, {"model": "imagenet", "images": [image], "filter": {}},
                {"model": "imagenet", "images": [image], "version": 2}):
        assert (await admin.client.post(url, json=bad)).status_code == 422, bad
    assert (await admin.client.post(url, json={"model": "nope", "images": [image]})).status_code == 404
    assert (await admin.client.post(url, json={"model": "imagenet", "images": [999_999]})
            ).status_code == 404
    assert (await admin.client.get(url, params={"status": "maybe"})).status_code == 422
    unknown = await admin.client.post(f"{url}/add", json=add)
    assert unknown.status_code == 422 and "cat" in unknown.json()["error"]["message"]
    # A trained model with no version yet cannot predict.
    async with transaction(app.state.sessions) as session:
        from server.models import AiModel

        await session.execute(insert(AiModel).values(
            project_id=pid, name="untrained", task="classification", kind="trained",
            multi_label=False, mapping={}, created_at=utcnow()))
    none = await admin.client.post(url, json={"model": "untrained", "images": [image]})
    assert none.status_code == 409 and none.json()["error"]["code"] == "not_trained"
