"""VOC XML parses and its boxes match the pixels each object covers."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
from starlette.applications import Starlette

from server.geometry.raster import rasterize
from server.geometry.validation import parse_object
from tests.conftest import Api
from tests.server.formats._seed import seeded_project
from tests.server.formats.test_native import export


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
