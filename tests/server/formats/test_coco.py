"""COCO export read back by pycocotools; COCO import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from starlette.applications import Starlette

from server.formats import coco
from server.formats._source import ImageRecord
from server.geometry.raster import rasterize
from server.geometry.rle import rle_encode
from server.geometry.validation import parse_object
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats._seed import H, W, seeded_project
from tests.server.formats.test_native import export


# pycocotools' Cython decode trips numpy 2's __array__ copy deprecation; harmless here.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
async def test_coco_loads_in_pycocotools_and_masks_match(admin: Api, app: Starlette, tmp_path: Path) -> None:
    pid = await seeded_project(admin, app)
    native = {i["name"]: i for i in json.loads(await export(admin, pid))["images"]}
    path = tmp_path / "coco.json"
    path.write_bytes(await export(admin, pid, "coco"))
    coco = COCO(str(path))
    cats = {c["id"]: c for c in coco.loadCats(coco.getCatIds())}
    assert sorted(c["name"] for c in cats.values()) == ["blob", "cat", "dog"]
    assert cats[next(i for i, c in cats.items() if c["name"] == "cat")]["keypoints"] == ["eye"]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 5  # polyline and point are not COCO instances
    for ann in anns:
        img = coco.loadImgs(ann["image_id"])[0]
        obj = next(o for o in native[img["file_name"]]["objects"] if o["id"] == ann["labelhub"]["id"])
        ours = rasterize(parse_object(obj), img["height"], img["width"])
        assert np.array_equal(coco.annToMask(ann).astype(bool), ours), obj["id"]
        assert ann["area"] == int(ours.sum())
        is_rle = isinstance(ann["segmentation"], dict)
        assert ann["iscrowd"] == 0  # RLE instances too: trainers skip crowd regions
        assert is_rle == (obj["type"] == "bitmap" or obj["id"] == "p2")  # bitmaps and holes as RLE
    box = next(a for a in anns if a["labelhub"]["id"] == "b1")
    assert box["bbox"] == [2.3, 3.7, 20.5, 10.2] and box["keypoints"] == [5.0, 6.0, 2]
    old = json.loads(await export(admin, pid, "coco", crowd_rle="1"))["annotations"]
    assert {a["labelhub"]["id"] for a in old if a["iscrowd"]} == {"m1", "p2"}  # the old convention


async def test_coco_import_creates_objects(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    coco_bytes = await export(admin, pid, "coco")
    other = await make_project(admin, "Other")
    await make_images(app, other, ["a.png", "b.png", "c.png"], W, H)
    resp = await admin.client.post(f"/api/v1/projects/{other}/import", params={"format": "coco"}, content=coco_bytes)
    assert resp.status_code == 200, resp.text
    src = {i["name"]: i for i in json.loads(await export(admin, pid))["images"]}
    dst = {i["name"]: i for i in json.loads(await export(admin, other))["images"]}
    b_src, b_dst = src["a.png"]["objects"], {o["id"]: o for o in dst["a.png"]["objects"]}
    for obj in b_src:
        if obj["type"] in ("bbox", "bitmap"):
            assert b_dst[obj["id"]] == obj
    # Polygons come back as their pixel outline: the same pixels.
    p1 = next(o for o in b_src if o["id"] == "p1")
    assert np.array_equal(rasterize(parse_object(p1), H, W), rasterize(parse_object(b_dst["p1"]), H, W))
    bad = await admin.client.post(f"/api/v1/projects/{other}/import", params={"format": "coco"},
                                  json={"images": [{"id": 1, "file_name": "a.png"}],
                                        "annotations": [{"image_id": 1, "category_id": 9, "bbox": [1, 1, 2, 2]}],
                                        "categories": []})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["report"][0]["field"] == "annotations.0.category_id"


@pytest.mark.parametrize("geometry", [
    {"x": 2.3, "y": 3.7, "w": 20.5, "h": 10.2}, {"x": -4, "y": 40, "w": 10, "h": 30},
    {"x": 10.6, "y": 10.6, "w": 0.2, "h": 0.2}, {"x": 0, "y": 0, "w": 64, "h": 48}, {"x": 1e-07, "y": 5, "w": 3.0, "h": 1},
])
def test_box_text_is_what_the_general_path_writes(geometry: dict[str, float]) -> None:
    obj = {"id": 'b"1\\ü', "type": "bbox", "label": "cat", "geometry": geometry, "keypoints": [],
           "attributes": {"color": "red"}, "occluded": True}
    general = coco.annotation(obj, W, H)
    assert general is not None
    general.update(id=7, image_id=3, category_id=2, labelhub={"id": obj["id"], "type": "bbox"},
                   attributes=obj["attributes"], occluded=True)
    assert coco.box_text(obj, W, H, 7, 3, 2) == coco._dumps(general)
    plain = obj | {"attributes": {}, "occluded": False}
    assert json.loads(coco.box_text(plain, W, H, 1, 1, 1))["attributes"] == {}


def test_a_label_that_appears_during_an_export_gets_the_next_category() -> None:
    box = {"id": "b", "type": "bbox", "label": "new", "geometry": {"x": 1, "y": 1, "w": 4, "h": 4},
           "keypoints": [], "attributes": {}, "occluded": False}
    point = box | {"id": "p", "type": "point", "label": "dot", "geometry": {"x": 1, "y": 1}}
    cats = {"cat": 1}
    anns, images, last = coco._convert([ImageRecord(5, "a.png", W, H, [], [box, point])], cats, {}, 10)
    assert cats == {"cat": 1, "new": 2} and last == 11  # points are not instances: no category
    assert json.loads(anns[0])["category_id"] == 2 and json.loads(images[0])["id"] == 5


def _previous_convert(batch: list[ImageRecord], cats: dict[str, int], kp_names: dict[str, list[str]],
                      crowd_rle: bool) -> list[str]:
    """The annotations as the writer gave them before polygons were traced in batches: one
    ``annotation()`` dict per object, encoded by ``_dumps``."""
    out, ann_id = [], 0
    for im in batch:
        for obj in im.objects:
            ann = coco.annotation(obj, im.width, im.height, crowd_rle)
            if ann is None:
                continue
            ann_id += 1
            ann.update(id=ann_id, image_id=im.id, category_id=cats[obj["label"]],
                       labelhub={"id": obj["id"], "type": obj["type"]},
                       attributes=obj["attributes"], occluded=obj["occluded"])
            if kp_names.get(obj["label"]):
                by_name = {k["name"]: k for k in obj["keypoints"]}
                flat: list[float] = []
                for n in kp_names[obj["label"]]:
                    k = by_name.get(n)
                    flat += [k["x"], k["y"], 2 if k["visible"] else 1] if k else [0, 0, 0]
                ann["keypoints"], ann["num_keypoints"] = flat, len(by_name)
            out.append(coco._dumps(ann))
    return out


@pytest.mark.parametrize("crowd_rle", [False, True])
def test_the_batch_writer_gives_the_previous_bytes(crowd_rle: bool) -> None:
    rng = np.random.default_rng(5)

    def obj(i: int, kind: str, geometry: dict[str, object], label: str = "dog", **extra: object) -> dict[str, object]:
        return {"id": f"o{i}", "type": kind, "label": label, "geometry": geometry, "keypoints": [],
                "attributes": {"n": i} if i % 3 else {}, "occluded": i % 2 == 0} | extra

    def star(cx: float, cy: float, r: float) -> list[list[float]]:
        t = np.sort(rng.uniform(0, 2 * np.pi, 9))
        rr = r * rng.uniform(0.3, 1, 9)
        return np.round(np.c_[cx + rr * np.cos(t), cy + rr * np.sin(t)], 2).tolist()

    mask = np.zeros((H, W), dtype=bool)
    mask[3:9, 4:20] = True
    mask[5:7, 8:12] = False
    images = []
    for n in range(4):
        objects = [
            obj(1, "polygon", {"parts": [{"exterior": star(20 + n, 20, 15)}]}),
            obj(2, "polygon", {"parts": [{"exterior": [[2, 2], [30, 2], [30, 30], [2, 30]],
                                          "holes": [[[8, 8], [14.5, 8], [14.5, 14.5]]]}]}),  # a hole
            obj(3, "polygon", {"parts": [{"exterior": star(12, 12, 10)}, {"exterior": star(45, 30, 12)},
                                         {"exterior": [[30, 30], [34, 30], [34, 34], [30, 34]]},
                                         {"exterior": [[34, 34], [38, 34], [38, 38], [34, 38]]}]}),  # corner-touching parts
            obj(4, "polygon", {"parts": [{"exterior": [[50, 5], [90, 5], [70, 60]]}]}),  # clipped at the edge
            obj(5, "polygon", {"parts": [{"exterior": [[10.1, 10.1], [10.3, 10.1], [10.3, 30]]}]}),  # no pixel
            obj(6, "bitmap", {"rle": rle_encode(mask)}, label="blob"),
            obj(7, "bbox", {"x": 1.5, "y": 2.25, "w": 10, "h": 7.5}),
            obj(8, "polygon", {"parts": [{"exterior": star(30, 24, 14)}]}, label="cat",
                keypoints=[{"name": "eye", "x": 30.0, "y": 20.0, "visible": True}]),
            obj(9, "point", {"x": 3, "y": 4}),
        ]
        images.append(ImageRecord(10 + n, f"{n}.png", W, H, [], objects))
    cats, kp_names = {"blob": 1, "cat": 2, "dog": 3}, {"cat": ["eye"]}
    ours, _images, last = coco._convert(images, dict(cats), kp_names, 0, crowd_rle)
    assert ours == _previous_convert(images, cats, kp_names, crowd_rle)
    assert last == len(ours) == 4 * 7  # the empty polygon and the point are left out
    kinds = [json.loads(a)["segmentation"] for a in ours]
    assert sum(isinstance(s, dict) for s in kinds) >= 8 and max(len(s) for s in kinds if isinstance(s, list)) >= 3
