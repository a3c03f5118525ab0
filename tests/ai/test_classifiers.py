"""Training models over REST on handwritten digits: versions, metrics, bad input, privileges,
the download; the built-in ImageNet model and its mapping."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import onnxruntime as ort
from starlette.applications import Starlette

from server.ai.training import MIN_PER_LABEL
from tests.ai._models import predict, run, small_digits, train
from tests.ai.test_suggestions import label_each
from tests.conftest import Api, UserFactory, add_member, make_project


async def test_training_stores_a_version_with_sensible_metrics(app: Starlette, admin: Api) -> None:
    d = await small_digits(admin)
    state = await train(app, admin, d.pid, name="digits")
    assert state.status == "done", state
    assert state.result is not None and state.result["version"] == 1
    assert state.result["images"] == 50 and state.result["failed"] == []
    resp = await admin.client.get(f"/api/v1/projects/{d.pid}/models/digits")
    assert resp.status_code == 200, resp.text
    model = resp.json()
    assert model["kind"] == "trained" and model["multi_label"] is False and model["latest"] == 1
    (v,) = model["versions"]
    assert v["labels"] == [f"digit {i}" for i in range(10)] and v["feature"] == "hog@1"
    assert v["stale"] is False and v["images"] == 50
    m = v["metrics"]
    assert m["accuracy"] >= 0.7 and m["folds"] == 5 and m["feature"] == "hog@1"
    assert 0 < m["threshold"] <= 1 and m["threshold"] == v["threshold"]
    assert [x["label"] for x in m["labels"]] == v["labels"]
    assert all(x["examples"] == 5 for x in m["labels"])
    assert np.mean([x["recall"] for x in m["labels"]]) >= 0.6
    curve = m["pr_curve"]
    assert curve and all(0 <= p["precision"] <= 1 and 0 <= p["recall"] <= 1 for p in curve)
    assert [p["threshold"] for p in curve] == sorted((p["threshold"] for p in curve), reverse=True)
    learning = m["learning_curve"]
    assert [p["images"] for p in learning] == sorted(p["images"] for p in learning)
    assert learning[-1]["quality"] == m["accuracy"] and learning[-1]["quality"] >= learning[0]["quality"]

    # Training again with the same name: version 2, listed with the built-in model.
    assert (await train(app, admin, d.pid, name="digits")).status == "done"
    listed = (await admin.client.get(f"/api/v1/projects/{d.pid}/models")).json()["models"]
    assert [(x["name"], x["kind"]) for x in listed] == [("imagenet", "builtin"), ("digits", "trained")]
    assert [v["version"] for v in listed[1]["versions"]] == [1, 2]
    assert "metrics" not in listed[1]["versions"][0] and listed[1]["versions"][0]["accuracy"] >= 0.7


async def test_download_is_a_zip_whose_onnx_head_scores_like_the_server(
        app: Starlette, admin: Api) -> None:
    d = await small_digits(admin, classes=3)
    assert (await train(app, admin, d.pid, name="three digits")).status == "done"
    resp = await admin.client.get(f"/api/v1/projects/{d.pid}/models/three digits/download")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as z:
        assert sorted(z.namelist()) == ["README.md", "labels.txt", "metrics.json", "model.onnx"]
        assert z.read("labels.txt").decode().split() == ["digit", "0", "digit", "1", "digit", "2"]
        session = ort.InferenceSession(z.read("model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(4, 1764)).astype(np.float32)
    (scores,) = session.run(["scores"], {"features": x})
    assert scores.shape == (4, 3) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    missing = await admin.client.get(f"/api/v1/projects/{d.pid}/models/three digits/download?version=9")
    assert missing.status_code == 404


async def test_too_few_labels_or_examples_is_a_422_naming_what_is_missing(
        app: Starlette, admin: Api) -> None:
    d = await small_digits(admin, classes=2, labeled=1)
    url = f"/api/v1/projects/{d.pid}/models"
    resp = await admin.client.post(url, json={"name": "m"})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "not_enough_examples"
    assert f"label 'digit 0' has 1 labeled image(s); it needs {MIN_PER_LABEL}" in error["message"]
    assert error["details"] == {"examples": {"digit 0": 1, "digit 1": 1}}
    one = await admin.client.post(url, json={"name": "m", "labels": ["digit 0"]})
    assert one.status_code == 422 and "at least two labels" in one.json()["error"]["message"]
    unknown = await admin.client.post(url, json={"name": "m", "labels": ["digit 0", "cat"]})
    assert unknown.status_code == 422 and "cat" in unknown.json()["error"]["message"]
    for bad in ({"name": "imagenet"}, {"name": "12"}, {"name": "m", "task": "detection"},
                {"name": "m", "features": ["sift@1"]}):
        assert (await admin.client.post(url, json=bad)).status_code == 422, bad
    # Nothing was made: only the built-in model, and no job.
    models = (await admin.client.get(url)).json()["models"]
    assert [m["name"] for m in models] == ["imagenet"]
    jobs = (await admin.client.get(f"/api/v1/projects/{d.pid}/jobs?kind=train")).json()["jobs"]
    assert jobs == []


async def test_automatic_labels_do_not_train(app: Starlette, admin: Api) -> None:
    d = await small_digits(admin, classes=2, labeled=1)
    extra = [i for i in d.unlabeled if d.target[d.ids.index(i)] == 0][:3]
    resp = await admin.client.post(f"/api/v1/projects/{d.pid}/suggestions/accept", json={
        "items": [{"image": i, "labels": ["digit 0"]} for i in extra]})
    assert resp.status_code == 200
    still = await admin.client.post(f"/api/v1/projects/{d.pid}/models", json={"name": "m"})
    assert still.status_code == 422 and "'digit 0' has 1" in still.json()["error"]["message"]


async def test_privileges(app: Starlette, admin: Api, users: UserFactory) -> None:
    pid = await make_project(admin)
    await label_each(admin, pid, {})
    labeler, viewer, stranger = await users("labeler"), await users("viewer"), await users("x")
    await add_member(admin, pid, labeler, "labeler")
    await add_member(admin, pid, viewer, "viewer")
    url = f"/api/v1/projects/{pid}/models"
    assert (await viewer.client.get(url)).status_code == 200
    assert (await viewer.client.get(f"{url}/imagenet")).status_code == 200
    assert (await stranger.client.get(url)).status_code == 404
    assert (await labeler.client.post(url, json={"name": "m"})).status_code == 403
    mapping = {"mapping": {"Egyptian cat": "cat"}}
    assert (await labeler.client.put(f"{url}/imagenet/mapping", json=mapping)).status_code == 403
    assert (await stranger.client.put(f"{url}/imagenet/mapping", json=mapping)).status_code == 404
    assert (await admin.client.get(f"{url}/nope")).status_code == 404


async def test_builtin_mapping_creates_labels_and_refuses_unknown_classes(
        app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    url = f"/api/v1/projects/{pid}/models/imagenet/mapping"
    resp = await admin.client.put(url, json={"mapping": {"Egyptian cat": "cat", "tabby": "cat",
                                                         "espresso": "Espresso"}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["mapping"] == {"Egyptian cat": "cat", "espresso": "Espresso", "tabby": "cat"}
    assert body["stale_mapping"] == []
    labels = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"]
    assert sorted(x["name"] for x in labels) == ["Espresso", "cat"]
    bad = await admin.client.put(url, json={"mapping": {"Egyptian kat": "cat"}})
    assert bad.status_code == 422 and "Egyptian kat" in bad.json()["error"]["message"]
    assert (await admin.client.get(f"/api/v1/projects/{pid}/models/imagenet")).json()["mapping"] == \
        body["mapping"]
    cat = next(x for x in labels if x["name"] == "cat")
    assert (await admin.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}",
                                     json={"name": "kitty"})).status_code == 200
    after = (await admin.client.get(f"/api/v1/projects/{pid}/models/imagenet")).json()
    assert after["stale_mapping"] == ["Egyptian cat", "tabby"]


async def test_multi_label_model_trains_and_predicts_several_labels(app: Starlette, admin: Api) -> None:
    d = await small_digits(admin, classes=3)
    # A second, overlapping label on the round digits people labeled (0 and 2).
    await label_each(admin, d.pid, {i: "round" for i, n in d.labeled.items() if n != "digit 1"})
    single = await admin.client.post(f"/api/v1/projects/{d.pid}/models", json={
        "name": "shapes", "multi_label": True, "features": ["hog@1"]})
    assert single.status_code == 202
    assert (await run(app, single.json()["job"])).status == "done"
    changed = await admin.client.post(f"/api/v1/projects/{d.pid}/models", json={
        "name": "shapes", "multi_label": False})
    assert changed.status_code == 422 and "multi-label" in changed.json()["error"]["message"]
    model = (await admin.client.get(f"/api/v1/projects/{d.pid}/models/shapes")).json()
    assert model["multi_label"] is True
    metrics = model["versions"][0]["metrics"]
    assert metrics["quality_measure"] == "micro average precision"
    assert {x["label"]: x["examples"] for x in metrics["labels"]} == {
        "digit 0": 5, "digit 1": 5, "digit 2": 5, "round": 10}
    state = await predict(app, admin, d.pid, model="shapes", images=d.unlabeled)
    assert state.status == "done"
    items = (await admin.client.get(f"/api/v1/projects/{d.pid}/predictions")).json()["items"]
    truth = {i: int(t) for i, t in zip(d.ids, d.target, strict=True)}
    both = [i for i in items if truth[i["image"]] in (0, 2)
            and {"round", f"digit {truth[i['image']]}"} <= set(i["confident"])]
    assert len(both) >= len([i for i in items if truth[i["image"]] in (0, 2)]) // 2
