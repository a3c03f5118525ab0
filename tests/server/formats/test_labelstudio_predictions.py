"""Label Studio predictions: imported as pending Labelhub predictions of an imported model,
added through /predictions/add, written back on export (LS -> Labelhub -> LS), and refused
per row, with nothing written, when a region is bad."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette

from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats._seed import H, W
from tests.server.formats.test_labelstudio import rect
from tests.server.formats.test_native import export


def scored(rid: str, label: str, x: float, y: float, w: float, h: float, score: float) -> dict[str, Any]:
    return rect(rid, label, x, y, w, h) | {"score": score}


def source() -> list[dict[str, Any]]:
    return [
        {"id": 1, "data": {"image": "s3://b/cat/001.jpg"},
         "annotations": [{"id": 1, "result": [rect("a1", "cat", 0, 0, 50, 50)]}],
         "predictions": [{"model_version": "yolo-v8", "score": 0.9, "result": [
             scored("r1", "cat", 12.5, 25.0, 50.0, 12.5, 0.8),
             scored("r2", "dog", 50, 50, 25, 25, 0.3),
             {"id": "p", "type": "polygonlabels", "value": {"points": [[1, 1], [9, 1], [5, 5]],
                                                            "polygonlabels": ["cat"]}}]}]},
        {"id": 2, "data": {"image": "dog/001.jpg"}, "predictions": [
            {"model_version": "yolo-v8", "score": 0.7, "result": [rect("r3", "dog", 0, 0, 100, 100.000001)]},
            {"model_version": "clf", "score": 0.6, "result": [
                {"id": "c", "type": "choices", "from_name": "choice", "to_name": "image",
                 "value": {"choices": ["dog", "indoor"]}}]}]},
    ]


async def listed(admin: Api, pid: int, **params: Any) -> dict[tuple[str, str], dict[str, Any]]:
    resp = await admin.client.get(f"/api/v1/projects/{pid}/predictions", params=params)
    assert resp.status_code == 200, resp.text
    images = {i["id"]: i["name"] for i in (await admin.client.get(
        f"/api/v1/projects/{pid}/images")).json()["images"]}
    return {(images[p["image"]], p["model_name"]): p for p in resp.json()["items"]}


async def test_predictions_import_review_add_and_round_trip(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin, "LS predictions")
    await make_images(app, pid, ["cat/001.jpg", "dog/001.jpg"], W, H)
    url = f"/api/v1/projects/{pid}/import"
    dry = await admin.client.post(url, params={"format": "labelstudio", "dry_run": "true"}, json=source())
    assert dry.status_code == 200, dry.text
    counts = {"models": 2, "predictions": 3, "objects": 3, "skipped_regions": 1, "kept": 0}
    assert dry.json()["predictions"] == counts
    assert await listed(admin, pid) == {}
    resp = await admin.client.post(url, params={"format": "labelstudio"}, json=source())
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == counts and resp.json()["images_with_object_changes"] == 1

    got = await listed(admin, pid)
    assert set(got) == {("cat/001.jpg", "Label Studio: yolo-v8"), ("dog/001.jpg", "Label Studio: yolo-v8"),
                        ("dog/001.jpg", "Label Studio: clf")}
    cat = got["cat/001.jpg", "Label Studio: yolo-v8"]
    assert cat["objects"] == [  # percentages -> pixels; the polygon is not a box: skipped
        {"type": "bbox", "label": "cat", "score": 0.8, "geometry": {"x": 8.0, "y": 12.0, "w": 32.0, "h": 6.0}},
        {"type": "bbox", "label": "dog", "score": 0.3, "geometry": {"x": 32.0, "y": 24.0, "w": 16.0, "h": 12.0}}]
    assert cat["status"] == "pending" and cat["stale"] is False and cat["threshold"] == 0.5
    whole = got["dog/001.jpg", "Label Studio: yolo-v8"]["objects"][0]
    assert whole["score"] == 0.7 and whole["geometry"] == {"x": 0.0, "y": 0.0, "w": W, "h": H}  # clipped
    clf = got["dog/001.jpg", "Label Studio: clf"]
    assert clf["labels"] == [{"label": "dog", "score": 0.6}, {"label": "indoor", "score": 0.6}]
    assert clf["confident"] == ["dog", "indoor"] and clf["objects"] == []

    models = {m["name"]: m for m in (await admin.client.get(f"/api/v1/projects/{pid}/models")).json()["models"]}
    yolo = models["Label Studio: yolo-v8"]
    assert (yolo["kind"], yolo["task"], yolo["can_predict"]) == ("imported", "detection", False)
    assert yolo["versions"][0]["labels"] == ["cat", "dog"] and models["Label Studio: clf"]["task"] == "classification"
    predict = await admin.client.post(f"/api/v1/projects/{pid}/predictions", json={"model": yolo["id"]})
    assert predict.status_code == 422 and "cannot predict" in predict.json()["error"]["message"]
    download = await admin.client.get(f"/api/v1/projects/{pid}/models/{yolo['id']}/download")
    assert download.status_code == 422 and "no weights" in download.json()["error"]["message"]
    retrain = await admin.client.post(f"/api/v1/projects/{pid}/models", json={"name": yolo["name"], "task": "detection"})
    assert retrain.status_code == 422 and "imported" in retrain.json()["error"]["message"]

    # Adding the cat's prediction through the existing path: the box scoring over 0.5.
    added = await admin.client.post(f"/api/v1/projects/{pid}/predictions/add",
                                    json={"items": [{"prediction": cat["id"]}]})
    assert added.status_code == 200, added.text
    [applied] = added.json()["applied"]
    assert len(applied["objects"]) == 1
    objects = {i["name"]: i["objects"] for i in json.loads(await export(admin, pid))["images"]}
    assert sorted((o["label"], o["geometry"]["x"]) for o in objects["cat/001.jpg"]) == [("cat", 0.0), ("cat", 8.0)]
    assert (await listed(admin, pid, status="pending")).keys() == {
        ("dog/001.jpg", "Label Studio: yolo-v8"), ("dog/001.jpg", "Label Studio: clf")}

    # LS -> Labelhub -> LS: pending predictions go back under their own model_version.
    tasks = {t["meta"]["labelhub_image"]: t for t in json.loads(await export(admin, pid, "labelstudio"))}
    assert tasks["cat/001.jpg"]["predictions"] == []  # added: no longer a prediction
    back = {p["model_version"]: p for p in tasks["dog/001.jpg"]["predictions"]}
    assert set(back) == {"yolo-v8", "clf"}
    [box] = back["yolo-v8"]["result"]
    assert box["score"] == 0.7 and box["value"]["rectanglelabels"] == ["dog"]
    assert [box["value"][k] for k in ("x", "y", "width", "height")] == pytest.approx([0, 0, 100, 100])
    assert sorted((r["value"]["choices"], r["score"]) for r in back["clf"]["result"]) == [
        (["dog"], 0.6), (["indoor"], 0.6)]

    other = await make_project(admin, "LS predictions again")
    await make_images(app, other, ["cat/001.jpg", "dog/001.jpg"], W, H)
    again = await admin.client.post(f"/api/v1/projects/{other}/import", params={"format": "labelstudio"},
                                    json=list(tasks.values()))
    assert again.status_code == 200, again.text
    moved = await listed(admin, other)
    assert moved.keys() == {("dog/001.jpg", "Label Studio: yolo-v8"), ("dog/001.jpg", "Label Studio: clf")}
    assert moved["dog/001.jpg", "Label Studio: clf"]["labels"] == clf["labels"]
    assert moved["dog/001.jpg", "Label Studio: yolo-v8"]["objects"][0]["geometry"] == pytest.approx(whole["geometry"])

    # The same file again: the pending prediction is replaced, not doubled.
    await admin.client.post(url, params={"format": "labelstudio"}, json=source())
    assert len(await listed(admin, pid, status="pending")) == 2


async def test_bad_prediction_regions_are_refused_per_row(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin, "LS bad predictions")
    await make_images(app, pid, ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"], W, H)

    def task(image: str, predictions: Any) -> dict[str, Any]:
        return {"data": {"image": image}, "predictions": predictions,
                "annotations": [{"result": [rect("ok", "cat", 0, 0, 10, 10)]}]}

    bad = [task("a.jpg", [{"model_version": "m", "result": [scored("r", "cat", 90, 0, 50, 10, 0.5)]}]),
           task("b.jpg", [{"model_version": "m", "result": [scored("r", "cat", 0, 0, 10, 10, 1.5)]}]),
           task("c.jpg", [{"model_version": "m", "result": [{"type": "rectanglelabels", "value": {
               "x": 0, "y": 0, "width": 5, "height": 5}}]}]),
           task("d.jpg", {"model_version": "m"}),
           task("e.jpg", [{"model_version": "m", "result": [rect("r", "cat", 0, 0, 10, 10)]}])]
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "labelstudio"}, json=bad)
    assert resp.status_code == 422, resp.text
    report = {e["row"]: e for e in resp.json()["error"]["details"]["report"]}
    assert [r for r, e in report.items() if e["status"] == "refused"] == [1, 2, 3, 4]
    assert (report[1]["field"], report[1]["reason"]) == ("predictions.0.result.0.value", "the box is outside the image")
    assert report[2]["field"] == "predictions.0.result.0.score"
    assert report[3]["field"] == "predictions.0.result.0.value.rectanglelabels"
    assert report[4]["field"] == "predictions" and report[5]["status"] == "not_applied"
    assert await listed(admin, pid) == {}
    assert all(i["objects"] == [] for i in json.loads(await export(admin, pid))["images"])
    models = (await admin.client.get(f"/api/v1/projects/{pid}/models")).json()["models"]
    assert [m["kind"] for m in models] == ["builtin"]
