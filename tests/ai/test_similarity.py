"""Similarity search over REST: ordering on handwritten digits, filters, not_ready, privileges."""

from __future__ import annotations

import numpy as np
from starlette.applications import Starlette

from tests.ai._digits import DIGITS, Digits, digits, upload
from tests.conftest import Api, UserFactory, add_member, make_project


async def label(api: Api, pid: int, ids: list[int], name: str) -> None:
    resp = await api.client.post(f"/api/v1/projects/{pid}/labels/apply",
                                 json={"op": {"kind": "add_label", "label": name}, "image_ids": ids})
    assert resp.status_code == 200, resp.text


@DIGITS
async def test_same_digit_images_rank_first(app: Starlette, admin: Api,
                                            prepared: Digits) -> None:
    d = prepared
    hits = []
    for q in range(0, len(d.ids), 37):
        resp = await admin.client.get(
            f"/api/v1/projects/{d.pid}/images/{d.ids[q]}/similar?limit=5")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["feature"] == "hog@1"
        items = body["items"]
        assert len(items) == 5 and d.ids[q] not in [i["image"] for i in items]
        sims = [i["similarity"] for i in items]
        assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)
        row = {image_id: i for i, image_id in enumerate(d.ids)}
        hits += [d.target[row[i["image"]]] == d.target[q] for i in items]
        assert items[0]["name"].endswith(".png") and items[0]["labels"] == []
    assert float(np.mean(hits)) >= 0.9


@DIGITS
async def test_filters_labeled_and_label_without(app: Starlette, admin: Api,
                                                 prepared: Digits) -> None:
    d = prepared
    sevens = [i for i, t in zip(d.ids, d.target, strict=True) if t == 7]
    await label(admin, d.pid, sevens[:10], "seven")
    base = f"/api/v1/projects/{d.pid}/images/{sevens[-1]}/similar?limit=30"
    labeled = (await admin.client.get(base + "&labeled=true")).json()["items"]
    assert labeled and all(i["labels"] == ["seven"] for i in labeled)
    unlabeled = (await admin.client.get(base + "&labeled=false")).json()["items"]
    assert len(unlabeled) == 30 and all(i["labels"] == [] for i in unlabeled)
    without = (await admin.client.get(base + "&label=seven&without=true")).json()["items"]
    assert all("seven" not in i["labels"] for i in without)
    carrying = (await admin.client.get(base + "&label=seven")).json()["items"]
    assert {i["image"] for i in carrying} <= set(sevens[:10]) and len(carrying) == 10


@DIGITS
async def test_images_like_a_labels_examples_that_do_not_carry_it(
        app: Starlette, admin: Api, prepared: Digits) -> None:
    d = prepared
    threes = [i for i, t in zip(d.ids, d.target, strict=True) if t == 3]
    await label(admin, d.pid, threes[:5], "three")
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/similar",
                                   json={"label": "three", "limit": 20})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["examples"] == 5 and body["label"] == "three"
    got = [i["image"] for i in body["items"]]
    assert len(got) == 20 and not set(got) & set(threes[:5])
    assert len(set(got) & set(threes)) >= 16  # 35 unlabeled threes exist
    unknown = await admin.client.post(f"/api/v1/projects/{d.pid}/similar", json={"label": "nine"})
    assert unknown.status_code == 404
    bad = await admin.client.post(f"/api/v1/projects/{d.pid}/similar", json={"label": "three",
                                                                                "limit": 0})
    assert bad.status_code == 422


async def test_asked_before_embeddings_exist_is_409_not_ready_with_the_job(admin: Api) -> None:
    pid = await make_project(admin)
    images, _ = digits(per_class=1)
    items = await upload(admin, pid, [("a.png", images[0]), ("b.png", images[1])])
    await label(admin, pid, [items[0]["id"]], "zero")
    for resp in (
        await admin.client.get(f"/api/v1/projects/{pid}/images/{items[0]['id']}/similar"),
        await admin.client.post(f"/api/v1/projects/{pid}/similar", json={"label": "zero"}),
        await admin.client.post(f"/api/v1/projects/{pid}/suggestions",
                                json={"images": [items[1]["id"]]}),
    ):
        assert resp.status_code == 409, resp.text
        error = resp.json()["error"]
        assert error["code"] == "not_ready" and "computed" in error["message"]
        assert error["job"]["kind"] == "embed" and error["job"]["status"] == "queued"
        assert error["job"]["progress"] == {"done": 0, "total": 0}
    jobs = (await admin.client.get(f"/api/v1/projects/{pid}/jobs?kind=embed")).json()["jobs"]
    assert len(jobs) == 1  # the upload's job, reused


async def test_a_cancelled_embed_job_is_queued_again_when_asked(admin: Api) -> None:
    pid = await make_project(admin)
    images, _ = digits(per_class=1)
    items = await upload(admin, pid, [("a.png", images[0])])
    job = (await admin.client.get(f"/api/v1/projects/{pid}/jobs")).json()["jobs"][0]
    await admin.client.post(f"/api/v1/projects/{pid}/jobs/{job['id']}/cancel")
    resp = await admin.client.get(f"/api/v1/projects/{pid}/images/{items[0]['id']}/similar")
    assert resp.status_code == 409
    assert resp.json()["error"]["job"]["id"] != job["id"]


async def test_privileges(app: Starlette, admin: Api, users: UserFactory) -> None:
    pid = await make_project(admin)
    images, _ = digits(per_class=1)
    items = await upload(admin, pid, [("a.png", images[0])])
    viewer, labeler, uploader, stranger = (await users("v"), await users("l"), await users("u"),
                                           await users("s"))
    await add_member(admin, pid, viewer, "viewer")
    await add_member(admin, pid, labeler, "labeler")
    await add_member(admin, pid, uploader, privileges=["view", "upload"])
    similar = f"/api/v1/projects/{pid}/images/{items[0]['id']}/similar"
    assert (await viewer.client.get(similar)).status_code == 409  # may ask; nothing computed yet
    assert (await stranger.client.get(similar)).status_code == 404
    assert (await stranger.client.post(f"/api/v1/projects/{pid}/similar",
                                       json={"label": "x"})).status_code == 404
    embeddings = f"/api/v1/projects/{pid}/embeddings"
    assert (await viewer.client.post(embeddings)).status_code == 403
    assert (await labeler.client.post(embeddings)).status_code == 403
    assert (await stranger.client.post(embeddings)).status_code == 404
    resp = await uploader.client.post(embeddings)
    assert resp.status_code == 202, resp.text
    assert resp.json()["missing"] == 1 and resp.json()["job"]["kind"] == "embed"
    other = await make_project(admin, "Other")
    assert (await admin.client.get(
        f"/api/v1/projects/{other}/images/{items[0]['id']}/similar")).status_code == 404


@DIGITS
async def test_a_deleted_image_is_never_answered_though_the_cache_holds_it(
        app: Starlette, admin: Api, prepared: Digits) -> None:
    d = prepared
    url = f"/api/v1/projects/{d.pid}/images/{d.ids[0]}/similar?limit=3"
    first = [i["image"] for i in (await admin.client.get(url)).json()["items"]]
    assert (await admin.client.delete(f"/api/v1/images/{first[0]}")).status_code == 204
    after = [i["image"] for i in (await admin.client.get(url)).json()["items"]]
    assert first[0] not in after and after[:2] == first[1:]
