"""VOC XML parses and its boxes match the pixels each object covers."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
from datumaro.components.annotation import AnnotationType, Bbox
from datumaro.components.dataset import Dataset
from starlette.applications import Starlette

from server.geometry.raster import rasterize
from server.geometry.validation import parse_object
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats._seed import seeded_project
from tests.server.formats.test_native import export
from tests.server.formats.test_zip import cat_and_dog


async def test_voc_xml_boxes_match_rasterized_extent(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    native = json.loads(await export(admin, pid))["images"][0]
    z = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "voc")))
    assert z.read("ImageSets/Main/default.txt").decode().split() == ["a", "b", "c"]
    root = ET.fromstring(z.read("Annotations/a.xml"))
    assert root.findtext("filename") == "a.png" and root.findtext("size/width") == "64"
    objects = root.findall("object")
    instances = [o for o in native["objects"] if o["type"] in ("bbox", "polygon", "bitmap")]
    assert [o.findtext("name") for o in objects] == [o["label"] for o in instances]
    assert sorted(o["label"] for o in instances) == ["blob", "cat", "dog", "dog"]
    for el, obj in zip(objects, instances, strict=True):
        mask = rasterize(parse_object(obj), 48, 64)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = [int(el.findtext(f"bndbox/{k}") or 0) for k in ("xmin", "ymin", "xmax", "ymax")]
        assert box == [cols[0] + 1, rows[0] + 1, cols[-1] + 1, rows[-1] + 1], obj["id"]
    assert objects[0].findtext("occluded") == "1"


async def test_voc_reads_back_in_datumaro_and_imports(admin: Api, app: Starlette, tmp_path: Path) -> None:
    pid = await cat_and_dog(admin, app)
    await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json={"images": [
        {"name": "cat/001.jpg", "objects": [{"id": "c", "type": "bbox", "label": "tabby cat",
                                             "geometry": {"x": 1, "y": 2, "w": 10, "h": 10}}]}]})
    blob = await export(admin, pid, "voc")
    zipfile.ZipFile(io.BytesIO(blob)).extractall(tmp_path / "voc")
    dataset = Dataset.import_from(str(tmp_path / "voc"), "voc_detection")
    labels = dataset.categories()[AnnotationType.label]
    boxes = {item.id: [(labels[a.label].name, a.points) for a in item.annotations if isinstance(a, Bbox)]
             for item in dataset}
    # Datumaro reads VOC boxes as given (1-based): the dog's pixels 30..49 -> 31..50.
    # labelmap.txt declares every label (else datumaro knows only VOC's 20 classes).
    assert boxes == {"cat/001": [("tabby cat", [2.0, 3.0, 11.0, 12.0])],
                     "dog/001": [("dog", [31.0, 21.0, 50.0, 40.0])]}
    dst = await make_project(admin, "Dst")
    await make_images(app, dst, ["cat/001.jpg", "dog/001.jpg"], 64, 48)
    resp = await admin.client.post(f"/api/v1/projects/{dst}/import", params={"format": "voc"}, content=blob)
    assert resp.status_code == 200, resp.text
    got = {i["name"]: i["objects"] for i in json.loads(await export(admin, dst))["images"]}
    assert [(o["label"], o["geometry"]) for o in got["dog/001.jpg"]] == [
        ("dog", {"x": 30.0, "y": 20.0, "w": 20.0, "h": 20.0})]
    assert [o["label"] for o in got["cat/001.jpg"]] == ["tabby cat"]


async def test_voc_import_refuses_bad_and_hostile_files(admin: Api, app: Starlette) -> None:
    dst = await make_project(admin, "Bad")
    await make_images(app, dst, ["a.jpg", "b.jpg", "c.jpg"], 64, 48)
    bomb = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
            "<annotation><filename>a.jpg</filename>&y;</annotation>")
    external = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                "<annotation><filename>b.jpg</filename><object><name>&e;</name></object></annotation>")
    inverted = ("<annotation><filename>c.jpg</filename><object><name>cat</name>"
                "<bndbox><xmin>20</xmin><ymin>1</ymin><xmax>10</xmax><ymax>5</ymax></bndbox></object></annotation>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Annotations/a.xml", bomb)
        z.writestr("Annotations/b.xml", external)
        z.writestr("Annotations/c.xml", inverted)
    resp = await admin.client.post(f"/api/v1/projects/{dst}/import", params={"format": "voc"}, content=buf.getvalue())
    assert resp.status_code == 422, resp.text
    reasons = {e["field"]: e["reason"] for e in resp.json()["error"]["details"]["report"] if e["status"] == "refused"}
    assert "DTDForbidden" in reasons["Annotations/a.xml"] and "DTDForbidden" in reasons["Annotations/b.xml"]
    assert "xmax/ymax" in reasons["Annotations/c.xml: object 1"]
    assert all(i["objects"] == [] for i in json.loads(await export(admin, dst))["images"])
