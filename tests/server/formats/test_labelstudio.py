"""Label Studio JSON: read back by Label Studio's own converter, LS -> Labelhub -> LS round trip,
brush RLE both ways, the cat/dog case, bad files refused with a per-row report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from label_studio_converter.brush import decode_rle, mask2rle
from label_studio_converter.converter import Converter
from starlette.applications import Starlette

from server.formats import _ls_rle
from server.geometry.rle import rle_decode
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats._seed import H, W, bitmap, seeded_project
from tests.server.formats.test_native import export

CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="cat"/><Label value="dog"/></RectangleLabels>
<PolygonLabels name="polygon" toName="image"><Label value="dog"/></PolygonLabels>
<BrushLabels name="brush" toName="image"><Label value="blob"/></BrushLabels>
<KeyPointLabels name="keypoint" toName="image"><Label value="dot"/></KeyPointLabels>
<Choices name="choice" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices></View>"""


def test_brush_rle_matches_label_studio_both_ways() -> None:
    mask = rle_decode(bitmap())
    ours = _ls_rle.encode(mask)
    assert np.array_equal(decode_rle(ours).reshape(H, W, 4)[:, :, 3] > 0, mask)
    assert np.array_equal(_ls_rle.decode(mask2rle(mask.astype(np.uint8) * 255), W, H), mask)
    with pytest.raises(ValueError, match="not those of a 10x10"):
        _ls_rle.decode(ours, 10, 10)


async def test_export_reads_in_label_studio_converter(admin: Api, app: Starlette, tmp_path: Path) -> None:
    pid = await seeded_project(admin, app)
    native = {i["name"]: i for i in json.loads(await export(admin, pid))["images"]}
    tasks = json.loads(await export(admin, pid, "labelstudio"))
    assert [t["data"]["image"] for t in tasks] == ["a.png", "b.png", "c.png"]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    Converter(CONFIG, project_dir=str(tmp_path), download_resources=False).convert_to_coco(
        str(tmp_path / "ls.json"), str(tmp_path / "coco"), is_dir=False)
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    anns = [(cats[a["category_id"]], a) for a in coco["annotations"] if a["image_id"] == 0]
    [cat] = [a for name, a in anns if name == "cat"]
    assert cat["bbox"] == pytest.approx([2.3, 3.7, 20.5, 10.2], abs=1e-9)
    first, second = (a["segmentation"][0] for name, a in anns if name == "dog")
    assert first == pytest.approx([30.2, 20.1, 60.7, 22.4, 45.5, 44.9], abs=1e-9)
    assert second == pytest.approx([1, 1, 20, 1, 20, 20, 1, 20], abs=1e-9)  # its hole is dropped
    results = tasks[0]["annotations"][0]["result"]
    brush = next(r for r in results if r["type"] == "brushlabels")
    mask = decode_rle(brush["value"]["rle"]).reshape(H, W, 4)[:, :, 3] > 0
    assert np.array_equal(mask, rle_decode(next(o for o in native["a.png"]["objects"] if o["id"] == "m1")["geometry"]["rle"]))
    choices = next(r for r in results if r["type"] == "choices")
    assert choices["value"]["choices"] == ["dog", "cat"]  # the default first


def ls_task(image: str, results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": 1, "data": {"image": image}, "annotations": [
        {"id": 9, "result": [{"id": "old", "type": "rectanglelabels", "value": {"x": 0, "y": 0, "width": 1, "height": 1,
                                                                               "rectanglelabels": ["x"]}}],
         "was_cancelled": True},
        {"id": 10, "result": results, "was_cancelled": False}], **extra}


def rect(rid: str, label: str, x: float, y: float, w: float, h: float, rotation: float = 0) -> dict[str, Any]:
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": W, "original_height": H,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}}


def label_studio_file() -> list[dict[str, Any]]:
    mask = rle_decode(bitmap())
    return [
        ls_task("s3://bucket/photos/cat/001.jpg", [
            rect("r1", "cat", 12.5, 25.0, 50.0, 12.5),
            {"id": "r1", "type": "textarea", "from_name": "note", "to_name": "image", "value": {"text": ["fluffy"]}},
            {"id": "p1", "type": "polygonlabels", "from_name": "polygon", "to_name": "image",
             "value": {"points": [[10, 10], [50, 10], [30, 40]], "polygonlabels": ["cat"]}},
            {"id": "b1", "type": "brushlabels", "from_name": "brush", "to_name": "image",
             "value": {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255), "brushlabels": ["blob"]}},
            {"id": "k1", "type": "keypointlabels", "from_name": "keypoint", "to_name": "image",
             "value": {"x": 50, "y": 50, "width": 0.5, "keypointlabels": ["nose"]}},
            {"id": "c", "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["indoor"]}}]),
        ls_task("/data/local-files/?d=dog/001.jpg", [rect("r2", "dog", 50, 25, 25, 25, rotation=90)]),
    ]


async def test_label_studio_round_trip_and_cat_dog(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin, "LS")
    await make_images(app, pid, ["cat/001.jpg", "dog/001.jpg"], W, H)
    source = label_studio_file()
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "labelstudio"},
                                   json=source)
    assert resp.status_code == 200, resp.text
    images = {i["name"]: i for i in json.loads(await export(admin, pid))["images"]}
    cat = {o["id"]: o for o in images["cat/001.jpg"]["objects"]}
    assert cat["r1"]["geometry"] == {"x": 8.0, "y": 12.0, "w": 32.0, "h": 6.0}  # 12.5% of 64 = 8
    assert cat["r1"]["attributes"] == {"note": "fluffy"}
    assert cat["p1"]["geometry"]["parts"][0]["exterior"] == [[6.4, 4.8], [32.0, 4.8], [19.2, 19.2]]
    assert np.array_equal(rle_decode(cat["b1"]["geometry"]["rle"]), rle_decode(bitmap()))
    assert cat["k1"]["type"] == "point" and cat["k1"]["geometry"] == {"x": 32.0, "y": 24.0}
    assert [s["label"] for s in images["cat/001.jpg"]["labels"]] == ["indoor"]
    [dog] = images["dog/001.jpg"]["objects"]  # turned 90 degrees about its top-left corner
    assert dog["type"] == "polygon"
    assert np.allclose(dog["geometry"]["parts"][0]["exterior"], [[32, 12], [32, 28], [20, 28], [20, 12]])
    # LS -> Labelhub -> LS: the same regions and values (ids, labels, percentages), up to the
    # documented differences (the cancelled annotation, original_* keys, the rotated rectangle).
    back = {t["meta"]["labelhub_image"]: t for t in json.loads(await export(admin, pid, "labelstudio"))}
    got = {(r["id"], r["type"]): r["value"] for r in back["cat/001.jpg"]["annotations"][0]["result"]}
    for res in source[0]["annotations"][1]["result"]:
        key = (res["id"] if res["type"] != "choices" else "choices", res["type"])
        value = got[key]
        for k, v in res["value"].items():
            if k == "rle":
                assert np.array_equal(decode_rle(value[k]).reshape(H, W, 4)[:, :, 3] > 0,
                                      decode_rle(v).reshape(H, W, 4)[:, :, 3] > 0)
            elif k == "points":
                assert np.allclose(value[k], v, rtol=0, atol=1e-9)
            elif k != "width" or res["type"] != "keypointlabels":
                assert value[k] == pytest.approx(v, abs=1e-9), (key, k)


async def test_a_task_without_annotations_leaves_its_image_alone(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin, "Unannotated")
    await make_images(app, pid, ["a.jpg"], W, H)
    url = f"/api/v1/projects/{pid}/import"
    await admin.client.post(url, params={"format": "labelstudio"}, json=[ls_task("a.jpg", [rect("r", "cat", 0, 0, 10, 10)])])
    cancelled = ls_task("a.jpg", [])
    cancelled["annotations"] = cancelled["annotations"][:1]  # only the cancelled one
    for task in ({"id": 2, "data": {"image": "a.jpg"}}, cancelled):
        resp = await admin.client.post(url, params={"format": "labelstudio", "mode": "replace"}, json=[task])
        assert resp.status_code == 200 and resp.json()["images_with_object_changes"] == 0, resp.text
    [image] = json.loads(await export(admin, pid))["images"]
    assert [o["id"] for o in image["objects"]] == ["r"]


async def test_bad_label_studio_files_are_refused_per_row(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin, "Bad")
    await make_images(app, pid, ["a.jpg", "b.jpg", "c.jpg"], W, H)
    url = f"/api/v1/projects/{pid}/import"
    bad = [ls_task("a.jpg", [rect("r", "cat", 90, 0, 50, 10)]),
           ls_task("b.jpg", [{"id": "x", "type": "brushlabels", "value": {"format": "rle", "rle": [1, 2],
                                                                            "brushlabels": ["m"]}}]),
           ls_task("c.jpg", [{"id": "y", "type": "polygonlabels", "value": {"points": "no", "polygonlabels": ["d"]}}]),
           ls_task("zzz.jpg", []), {"id": 5, "data": {}}]
    resp = await admin.client.post(url, params={"format": "labelstudio"}, json=bad)
    assert resp.status_code == 422, resp.text
    report = [e for e in resp.json()["error"]["details"]["report"] if e["status"] == "refused"]
    assert [e["row"] for e in report] == [1, 2, 3, 4, 5]
    assert report[1]["field"] == "annotations.1.result.0" and "brush RLE" in report[1]["reason"]
    assert report[2]["field"] == "annotations.1.result.0" and "points" in report[2]["reason"]
    assert report[4]["field"] == "tasks.4.data.image"
    assert all(i["objects"] == [] for i in json.loads(await export(admin, pid))["images"])
    resp = await admin.client.post(url, params={"format": "labelstudio"}, content=b'{"tasks": 1')
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_file"
