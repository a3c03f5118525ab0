"""Detectors over REST and the worker: train on people's boxes, predict boxes, download; what
too few boxes says; privileges; a corrupted stored detector fails its job clearly."""

from __future__ import annotations

import io
import zipfile

from sqlalchemy import insert, select, update
from starlette.applications import Starlette

from server.ai.detection import Detected, iou
from server.db import transaction
from server.models import AiModel, AiModelVersion, utcnow
from tests.ai._boxes import import_boxes, plain_images, scenes_project, seeded_detector
from tests.ai._models import predict, run, train
from tests.ai.test_predictions import pending
from tests.conftest import Api, UserFactory, add_member, make_project


async def test_a_detector_trains_on_boxes_predicts_boxes_and_downloads(
        app: Starlette, admin: Api) -> None:
    pid, ids, truth = await scenes_project(admin, 14, boxed=12)
    state = await train(app, admin, pid, task="detection", name="shapes", features=None)
    assert state.status == "done", state
    result = state.result or {}
    assert result["version"] == 1 and result["images"] == 12 and result["failed"] == []
    assert result["map50"] >= 0.4 and result["boxes"] == sum(len(b) for b in truth[:12])
    model = (await admin.client.get(f"/api/v1/projects/{pid}/models/shapes")).json()
    assert model["task"] == "detection" and model["latest"] == 1
    version = model["versions"][0]
    metrics = version["metrics"]
    assert version["feature"] == "lite0-maps@1" and version["threshold"] == metrics["threshold"]
    assert metrics["quality_measure"] == "mAP@0.5 (cross-validated)"
    assert {"map50", "labels", "pr_curve", "learning_curve", "folds", "images", "boxes"} <= set(metrics)
    listed = (await admin.client.get(f"/api/v1/projects/{pid}/models")).json()["models"]
    assert next(m for m in listed if m["name"] == "shapes")["versions"][0]["map50"] == metrics["map50"]

    # Predicting: the images are not embedded; the job computes their maps itself.
    state = await predict(app, admin, pid, model="shapes", images=ids[12:])
    assert state.status == "done" and state.result is not None
    assert state.result["predicted"] == 2 and state.result["failed"] == []
    items = {i["image"]: i for i in await pending(admin, pid, model="shapes")}
    assert sorted(items) == ids[12:]
    hits = expected = 0
    for image, boxes in zip(ids[12:], truth[12:], strict=True):
        item = items[image]
        assert item["labels"] == [] and item["stale"] is False
        assert item["threshold"] == version["threshold"]
        scores = [o["score"] for o in item["objects"]]
        assert scores == sorted(scores, reverse=True)
        for o in item["objects"]:
            assert set(o) == {"type", "label", "score", "geometry"} and o["type"] == "bbox"
            g = o["geometry"]
            assert set(g) == {"x", "y", "w", "h"}
            assert 0 <= g["x"] and g["x"] + g["w"] <= 320 and 0 <= g["y"] and g["y"] + g["h"] <= 320
        confident = [Detected(o["label"], o["score"], **o["geometry"]) for o in item["objects"]
                     if o["score"] >= item["threshold"]]
        expected += len(boxes)
        hits += sum(any(d.label == n and iou(d, Detected(n, 1, x, y, w, h)) >= 0.5
                        for d in confident) for n, x, y, w, h in boxes)
    assert hits >= expected / 2, (hits, expected)

    resp = await admin.client.get(f"/api/v1/projects/{pid}/models/shapes/download")
    assert resp.status_code == 200
    with zipfile.ZipFile(io.BytesIO(resp.content)) as z:
        assert "detector_head.onnx" in z.namelist()
        assert z.read("labels.txt").decode().split() == [x["label"] for x in metrics["labels"]]


async def test_too_few_boxes_bad_requests_and_privileges(app: Starlette, admin: Api,
                                                         users: UserFactory) -> None:
    pid = await make_project(admin)
    await plain_images(app, pid, 3)
    url = f"/api/v1/projects/{pid}/models"
    none = await admin.client.post(url, json={"task": "detection", "name": "d"})
    assert none.status_code == 422 and none.json()["error"]["code"] == "not_enough_examples"
    assert "there are none" in none.json()["error"]["message"]
    await import_boxes(admin, pid, {"p0.png": [("cat", 1, 1, 20, 20), ("dog", 40, 40, 20, 20)],
                                    "p1.png": [("cat", 5, 5, 30, 30)]})
    few = await admin.client.post(url, json={"task": "detection", "name": "d"})
    assert few.status_code == 422
    message = few.json()["error"]["message"]
    assert "label 'cat' has 2 box(es); it needs 3" in message
    assert "label 'dog' has 1 box(es)" in message and "2 image(s) have boxes" in message
    assert few.json()["error"]["details"] == {"boxes": {"cat": 2, "dog": 1}, "images": 2}
    for bad in ({"task": "detection", "name": "d", "features": ["hog@1"]},
                {"task": "detection", "name": "d", "multi_label": True},
                {"task": "detection", "name": "d", "labels": ["nope"]},
                {"task": "segmentation", "name": "d"}):
        assert (await admin.client.post(url, json=bad)).status_code == 422, bad
    async with transaction(app.state.sessions) as session:
        await session.execute(insert(AiModel).values(
            project_id=pid, name="classes", task="classification", kind="trained",
            multi_label=False, mapping={}, created_at=utcnow()))
    clash = await admin.client.post(url, json={"task": "detection", "name": "classes"})
    assert clash.status_code == 422 and "classification model" in clash.json()["error"]["message"]
    labeler, viewer = await users("labeler"), await users("viewer")
    await add_member(admin, pid, labeler, "labeler")
    await add_member(admin, pid, viewer, "viewer")
    assert (await labeler.client.post(url, json={"task": "detection", "name": "d"})).status_code == 403
    assert (await viewer.client.get(url)).status_code == 200


async def test_a_corrupted_detector_fails_its_job_and_its_download(app: Starlette,
                                                                  admin: Api) -> None:
    pid = await make_project(admin)
    images = await plain_images(app, pid, 2)
    model_id, _ = await seeded_detector(app, pid)
    async with transaction(app.state.sessions) as session:
        row = (await session.execute(select(AiModelVersion).where(
            AiModelVersion.model_id == model_id))).scalar_one()
        broken = bytearray(row.weights)
        broken[7] ^= 0xFF
        await session.execute(update(AiModelVersion).where(AiModelVersion.id == row.id)
                              .values(weights=bytes(broken)))
    resp = await admin.client.post(f"/api/v1/projects/{pid}/predictions",
                                   json={"model": "boxes", "images": images})
    assert resp.status_code == 202
    state = await run(app, resp.json()["job"])
    assert state.status == "failed" and state.error is not None
    assert "model 'boxes' version 1 is corrupted" in state.error and "checksum" in state.error
    assert await pending(admin, pid) == []
    download = await admin.client.get(f"/api/v1/projects/{pid}/models/boxes/download")
    assert download.status_code == 409 and download.json()["error"]["code"] == "model_corrupted"
