"""COCO export read back by pycocotools; COCO import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from starlette.applications import Starlette

from server import offload
from server.formats import coco as coco_format
from server.geometry.raster import rasterize
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


async def test_batches_converted_in_the_worker_pool_give_the_same_file(
        admin: Api, app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big batch is converted in a worker process (decoded, written, labels that appeared
    handed back); the small seed runs inline. Priced as big, it must give the very same bytes."""
    pid = await seeded_project(admin, app)
    inline = await export(admin, pid, "coco")
    pool = offload.get()
    before = pool.submitted
    monkeypatch.setattr(coco_format, "CONVERT_COST_PER_BYTE", pool.inline_cost)  # any batch is big now
    assert await export(admin, pid, "coco") == inline
    assert await export(admin, pid, "coco", crowd_rle="1") != inline
    assert pool.submitted == before + 2  # one batch per export (3 images)
