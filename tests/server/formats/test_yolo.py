"""YOLO export follows the ultralytics layout: read back the way ultralytics reads a dataset."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset
from starlette.applications import Starlette

from server.formats.yolo import data_yaml
from server.geometry.raster import rasterize
from server.geometry.validation import parse_object
from server.storage import open_store, original_key
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats._seed import H, W, seeded_project
from tests.server.formats.test_native import export
from tests.server.formats.test_zip import cat_and_dog


def load_like_ultralytics(root: Path, data_file: str) -> tuple[dict[str, Any], dict[str, list[list[float]]]]:
    """The steps of ``ultralytics.data.utils.check_det_dataset`` / ``get_img_files`` /
    ``img2label_paths`` / ``verify_image_label`` that concern the files we write (ultralytics
    itself needs torch, too heavy for this suite): data.yaml by ``yaml.safe_load``, the dataset
    root is the folder of data.yaml when there is no ``path``, ``./`` lines of train.txt are
    relative to train.txt, ``/images/`` -> ``/labels/`` and the suffix -> ``.txt``."""
    data = yaml.safe_load((root / data_file).read_text(encoding="utf-8"))
    assert {"train", "val", "names"} <= set(data) and len(data["names"]) == data["nc"]
    base = Path(data.get("path") or (root / data_file).parent)
    listing = base / data["train"]
    parent = str(listing.parent) + os.sep
    images = [x.replace("./", parent) if x.startswith("./") else x
              for x in listing.read_text(encoding="utf-8").strip().splitlines()]
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    labels: dict[str, list[list[float]]] = {}
    for image in images:
        label_file = Path(sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")
        assert label_file.is_file(), label_file
        rows = [[float(v) for v in line.split()] for line in label_file.read_text(encoding="utf-8").splitlines()]
        for row in rows:
            assert row[0] == int(row[0]) and 0 <= row[0] < data["nc"]
            assert all(0 <= v <= 1 for v in row[1:])
        labels[Path(image).name] = rows
    return data, labels


def unzip(blob: bytes, into: Path) -> Path:
    zipfile.ZipFile(io.BytesIO(blob)).extractall(into)
    return into


async def test_yolo_detect_reads_back_as_ultralytics_does(
    admin: Api, app: Starlette, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = await seeded_project(admin, app)
    root = unzip(await export(admin, pid, "yolo"), tmp_path / "export")
    monkeypatch.chdir(tmp_path)  # `yolo train data=export/data.yaml` from the parent folder
    data, labels = load_like_ultralytics(Path("export"), "data.yaml")
    assert data["names"] == {0: "blob", 1: "cat", 2: "dog", 3: "dot", 4: "road"}
    assert set(labels) == {"a.png", "b.png", "c.png"} and labels["c.png"] == []
    assert all(len(row) == 5 for rows in labels.values() for row in rows)
    assert labels["b.png"] == [[1, round(45 / W, 6), round(34 / H, 6), round(10 / W, 6), round(8 / H, 6)]]
    # One box per instance of a.png in object order; points and polylines are left out. A box
    # spans the object's extent: it contains every pixel the object covers.
    native = json.loads(await export(admin, pid))["images"][0]["objects"]
    instances = [o for o in native if o["type"] in ("bbox", "polygon", "bitmap")]
    assert [int(r[0]) for r in labels["a.png"]] == [list(data["names"].values()).index(o["label"]) for o in instances]
    for (_cls, cx, cy, bw, bh), obj in zip(labels["a.png"], instances, strict=True):
        rows, cols = np.nonzero(rasterize(parse_object(obj), H, W))
        assert (cx - bw / 2) * W <= cols.min() + 0.5 + 1e-4 and (cx + bw / 2) * W >= cols.max() + 0.5 - 1e-4
        assert (cy - bh / 2) * H <= rows.min() + 0.5 + 1e-4 and (cy + bh / 2) * H >= rows.max() + 0.5 - 1e-4
    assert (root / "data.yaml").read_text().count("path:") == 0


async def test_yolo_segment_writes_polygons(admin: Api, app: Starlette, tmp_path: Path) -> None:
    pid = await seeded_project(admin, app)
    root = unzip(await export(admin, pid, "yolo", task="segment"), tmp_path / "seg")
    _data, labels = load_like_ultralytics(root, "data.yaml")
    rows = labels["a.png"]
    # Segments: class + an even number (>= 6) of coordinates; ultralytics tells them from boxes
    # by having more than 6 columns.
    assert all(len(r) % 2 == 1 and len(r) >= 7 for r in rows)
    polygon = next(r for r in rows if r[0] == 2 and len(r) == 7)
    assert polygon[1:3] == [round(30.2 / W, 6), round(20.1 / H, 6)]
    bad = await admin.client.get(f"/api/v1/projects/{pid}/export", params={"format": "yolo", "task": "pose"})
    assert bad.status_code == 422


def test_data_yaml_quotes_any_label_name() -> None:
    names = ['a "quoted" name', "back\\slash", "colon: yes", "#hash", "tab\there", "ünï"]
    assert yaml.safe_load(data_yaml(names))["names"] == dict(enumerate(names))


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


async def test_yolo_import_reads_our_export_and_plain_layouts(admin: Api, app: Starlette) -> None:
    pid = await cat_and_dog(admin, app)
    dst = await make_project(admin, "Dst")
    await make_images(app, dst, ["cat/001.jpg", "dog/001.jpg"], 64, 48)
    url = f"/api/v1/projects/{dst}/import"
    for task in ("detect", "segment"):
        resp = await admin.client.post(url, params={"format": "yolo", "mode": "replace"},
                                       content=await export(admin, pid, "yolo", task=task))
        assert resp.status_code == 200, resp.text
        got = {i["name"]: i["objects"] for i in json.loads(await export(admin, dst))["images"]}
        [dog] = got["dog/001.jpg"]
        assert dog["label"] == "dog" and dog["type"] == ("bbox" if task == "detect" else "polygon")
        if task == "detect":  # 6 decimals of 64 px
            assert dog["geometry"] == pytest.approx({"x": 30, "y": 20, "w": 20, "h": 20}, abs=1e-4)
    # Darknet-style: classes.txt and no names.csv; the label path names the image by its stem.
    plain = _zip({"classes.txt": "cat\ndog\n", "labels/train/dog/001.txt": "0 0.5 0.5 0.25 0.5\n",
                  "labels/train/cat/001.txt": ""})
    resp = await admin.client.post(url, params={"format": "yolo", "mode": "replace"}, content=plain)
    assert resp.status_code == 200, resp.text
    got = {i["name"]: i["objects"] for i in json.loads(await export(admin, dst))["images"]}
    assert got["cat/001.jpg"] == [] and got["dog/001.jpg"][0]["geometry"] == {"x": 24.0, "y": 12.0, "w": 16.0, "h": 24.0}


async def test_yolo_import_refuses_bad_rows_and_writes_nothing(admin: Api, app: Starlette) -> None:
    dst = await make_project(admin, "Bad")
    await make_images(app, dst, ["a.jpg", "b.jpg", "c.jpg"], 64, 48)
    body = _zip({"data.yaml": "names: [cat]\n", "labels/train/a.txt": "3 0.5 0.5 0.1 0.1\n",
                 "labels/train/b.txt": "0 0.5 0.5 1.5 0.1\n", "labels/train/c.txt": "0 0.5 0.5\n",
                 "labels/train/zzz.txt": "0 0.5 0.5 0.1 0.1\n"})
    resp = await admin.client.post(f"/api/v1/projects/{dst}/import", params={"format": "yolo"}, content=body)
    assert resp.status_code == 422, resp.text
    report = {e["image"]: e for e in resp.json()["error"]["details"]["report"] if e["status"] == "refused"}
    assert "class 3" in report["a.jpg"]["reason"] and report["a.jpg"]["field"] == "labels/train/a.txt:1"
    assert "outside the image" in report["b.jpg"]["reason"]
    assert "class cx cy w h" in report["c.jpg"]["reason"]
    assert "no image named 'zzz'" in report["zzz"]["reason"]
    assert all(i["objects"] == [] for i in json.loads(await export(admin, dst))["images"])
    resp = await admin.client.post(f"/api/v1/projects/{dst}/import", params={"format": "yolo"}, content=b"nope")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_file"
    aliases = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nnames: [*c, *c]\n"
    resp = await admin.client.post(f"/api/v1/projects/{dst}/import", params={"format": "yolo"},
                                   content=_zip({"data.yaml": aliases, "labels/train/a.txt": ""}))
    assert resp.status_code == 400 and "must be a text" in resp.json()["error"]["message"]


async def test_yolo_export_with_images_reads_in_datumaro(admin: Api, app: Starlette, tmp_path: Path) -> None:
    pid = await seeded_project(admin, app)
    png = cv2.imencode(".png", np.zeros((H, W, 3), np.uint8))[1].tobytes()
    # Real files (datumaro sizes images from them), where the store keeps originals.
    await open_store(app.state.settings).put_many(
        [(original_key(hashlib.sha256(f"{pid}/{name}".encode()).hexdigest()), png)
         for name in ("a.png", "b.png", "c.png")])
    unzip(await export(admin, pid, "yolo", images="1"), tmp_path / "y")
    dataset = Dataset.import_from(str(tmp_path / "y"), "yolo")
    names = dataset.categories()[AnnotationType.label]
    items = {item.id: item for item in dataset}
    assert set(items) == {"a", "b", "c"} and items["c"].annotations == []
    [box] = items["b"].annotations
    assert names[box.label].name == "cat"
    assert [box.x, box.y, box.w, box.h] == pytest.approx([40, 30, 10, 8], abs=1e-4)
    assert len(items["a"].annotations) == 4  # box, two polygons and the bitmap, as extents
