"""CVAT for images 1.1 XML: read back by datumaro (CVAT's own dataset library), CVAT -> Labelhub
-> CVAT round trip, the cat/dog case, hostile and malformed files refused."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from datumaro.components.annotation import (
    AnnotationType,
    Bbox,
    Label,
    Mask,
    Points,
    Polygon,
    PolyLine,
)
from datumaro.components.dataset import Dataset
from starlette.applications import Starlette

from server.formats.cvat import mask_from_rle, mask_rle
from server.geometry.raster import rasterize
from server.geometry.rle import rle_decode
from server.geometry.validation import parse_object
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats._seed import H, W, seeded_project
from tests.server.formats.test_native import export
from tests.server.formats.test_zip import cat_and_dog


def test_mask_rle_round_trips() -> None:
    mask = np.zeros((H, W), dtype=bool)
    mask[5:15, 30:50] = True
    mask[5, 30] = False
    runs, left, top, w, h = mask_rle(mask) or ("", 0, 0, 0, 0)
    assert (left, top, w, h) == (30, 5, 20, 10) and runs == "1,199"
    assert np.array_equal(mask_from_rle(runs, left, top, w, h, (W, H)), mask)


# Datumaro hands pycocotools a mask RLE whose numpy 2 conversion warns (their code, not ours).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
async def test_export_reads_in_datumaro(admin: Api, app: Starlette, tmp_path: Path) -> None:
    pid = await seeded_project(admin, app)
    native = {i["name"]: i for i in json.loads(await export(admin, pid))["images"]}
    (tmp_path / "annotations.xml").write_bytes(await export(admin, pid, "cvat"))
    (tmp_path / "images").mkdir()
    for name in native:  # datumaro wants the image files beside the XML (sizes come from it)
        (tmp_path / "images" / name).write_bytes(b"")
    dataset = Dataset.import_from(str(tmp_path / "annotations.xml"), "cvat")
    names = dataset.categories()[AnnotationType.label]
    items = {item.id: item for item in dataset}
    assert set(items) == {"a", "b", "c"}
    anns = items["a"].annotations
    by_kind = {type(a).__name__: [x for x in anns if type(x) is type(a)] for a in anns}
    assert [names[a.label].name for a in by_kind["Label"]] == ["dog", "cat"]  # the default first
    [box] = by_kind["Bbox"]
    assert box.points == pytest.approx([2.3, 3.7, 22.8, 13.9], abs=1e-5)  # datumaro keeps float32
    assert box.attributes["occluded"] is True
    assert box.attributes["color"] == "red"
    [polygon] = by_kind["Polygon"]
    assert polygon.points == pytest.approx([30.2, 20.1, 60.7, 22.4, 45.5, 44.9], abs=1e-5)
    objects = {o["id"]: o for o in native["a.png"]["objects"]}
    masks = {names[m.label].name: m.image.astype(bool) for m in by_kind["Mask"]}
    assert np.array_equal(masks["blob"], rle_decode(objects["m1"]["geometry"]["rle"]))
    # The polygon with a hole is a mask of exactly Labelhub's pixels.
    assert np.array_equal(masks["dog"], rasterize(parse_object(objects["p2"]), H, W))
    assert [p.points for p in by_kind["PolyLine"]] == [[1, 1, 9, 9]]
    assert [p.points for p in by_kind["Points"]] == [[3, 4]]
    assert {Bbox, Label, Mask, Points, Polygon, PolyLine} == {type(a) for a in anns}


CVAT_FILE = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
<meta><task><name>t</name><labels>
 <label><name>cat</name><attributes><attribute><name>age</name><input_type>number</input_type></attribute>
  <attribute><name>fluffy</name><input_type>checkbox</input_type></attribute></attributes></label>
 <label><name>dog</name><attributes/></label><label><name>indoor</name><attributes/></label>
</labels></task></meta>
<image id="0" name="photos/cat/001.jpg" width="64" height="48">
 <tag label="indoor" source="manual"></tag>
 <box label="cat" source="manual" occluded="1" xtl="1.5" ytl="2.25" xbr="11.5" ybr="12.25" z_order="2">
  <attribute name="age">3</attribute><attribute name="fluffy">true</attribute></box>
 <polygon label="cat" source="manual" occluded="0" points="10.0,10.0;50.0,10.0;30.0,40.0" z_order="0"></polygon>
 <polyline label="dog" source="manual" occluded="0" points="1.0,1.0;9.0,9.0" z_order="0"></polyline>
 <points label="dog" source="manual" occluded="0" points="3.0,4.0" z_order="0"></points>
 <mask label="dog" source="manual" occluded="0" rle="1,59" left="30" top="5" width="20" height="3" z_order="1"></mask>
</image>
<image id="1" name="dog/001.jpg" width="64" height="48">
 <box label="dog" source="manual" occluded="0" xtl="30.0" ytl="20.0" xbr="50.0" ybr="40.0" z_order="0"></box>
</image>
</annotations>
"""


def _shapes(xml: bytes) -> dict[str, list[tuple[str, dict[str, str], dict[str, str]]]]:
    root = ET.fromstring(xml)
    out = {}
    for im in root.findall("image"):
        out[im.attrib["name"].rsplit("/", 2)[-2]] = sorted(
            (el.tag, {k: v for k, v in el.attrib.items() if k != "source"},
             {a.attrib["name"]: a.text or "" for a in el.findall("attribute")}) for el in im)
    return out


async def test_cvat_round_trip_and_cat_dog(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin, "CVAT")
    await make_images(app, pid, ["cat/001.jpg", "dog/001.jpg"], W, H)
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "cvat"},
                                   content=CVAT_FILE.encode())
    assert resp.status_code == 200, resp.text
    images = {i["name"]: i for i in json.loads(await export(admin, pid))["images"]}
    box = next(o for o in images["cat/001.jpg"]["objects"] if o["type"] == "bbox")
    assert box["geometry"] == {"x": 1.5, "y": 2.25, "w": 10.0, "h": 10.0} and box["occluded"] and box["z"] == 2
    assert box["attributes"] == {"age": 3, "fluffy": True}
    assert [o["label"] for o in images["dog/001.jpg"]["objects"]] == ["dog"]
    # CVAT -> Labelhub -> CVAT: the same elements and attributes up to the documented
    # differences (image ids and the folders the file's names had beyond the project's).
    back = await export(admin, pid, "cvat")
    assert _shapes(back) == _shapes(CVAT_FILE.encode())


async def test_cat_and_dog_export(admin: Api, app: Starlette) -> None:
    pid = await cat_and_dog(admin, app)
    odd = 'a&b <c> "d"'  # escaped once, in attributes, text and <meta>
    body = {"images": [{"name": "dog/001.jpg", "objects": [
        {"id": "d", "type": "bbox", "label": odd, "attributes": {odd: odd},
         "geometry": {"x": 30, "y": 20, "w": 20, "h": 20}}]}]}
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json=body)
    assert resp.status_code == 200, resp.text
    xml = await export(admin, pid, "cvat")
    root = ET.fromstring(xml)
    assert [(i.attrib["name"], i[0].attrib["label"]) for i in root.findall("image")] == [
        ("cat/001.jpg", "cat"), ("dog/001.jpg", odd)]
    assert root.find("image/box/attribute").attrib["name"] == odd  # type: ignore[union-attr]
    assert odd in [el.text for el in root.iter("name")]
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "cvat"}, content=xml)
    assert resp.status_code == 200 and resp.json()["images_with_object_changes"] == 2, resp.text
    dog = json.loads(await export(admin, pid))["images"][1]["objects"][0]
    assert (dog["label"], dog["attributes"]) == (odd, {odd: odd})


async def test_hostile_and_malformed_cvat_files_are_refused(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin, "Bad")
    await make_images(app, pid, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], W, H)
    url = f"/api/v1/projects/{pid}/import"
    laughs = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
              '<!ENTITY c "&b;&b;&b;&b;&b;&b;">]><annotations>&c;</annotations>')
    external = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                '<annotations><image name="a.jpg">&e;</image></annotations>')
    for body in (laughs, external):
        resp = await admin.client.post(url, params={"format": "cvat"}, content=body.encode())
        assert resp.status_code == 400 and "DTDForbidden" in resp.json()["error"]["message"]
    bad = CVAT_FILE.replace("photos/cat/001.jpg", "a.jpg").replace('name="dog/001.jpg"', 'name="b.jpg"')
    bad = bad.replace('label="dog" source="manual" occluded="0" xtl', 'label="wolf" source="manual" occluded="0" xtl')
    bad = bad.replace('rle="1,59"', 'rle="1,99"')
    bad = bad.replace("</annotations>", '<image id="2" name="c.jpg" width="640" height="48"></image>'
                      '<image id="3" name="d.jpg" width="64" height="48"><box label="cat" xtl="1" ytl="1" xbr="99" ybr="2"/></image>'
                      '<image id="4" name="zzz.jpg"></image></annotations>')
    resp = await admin.client.post(url, params={"format": "cvat"}, content=bad.encode())
    assert resp.status_code == 422, resp.text
    report = {e["image"]: e for e in resp.json()["error"]["details"]["report"] if e["status"] == "refused"}
    assert "add up to its width x height" in report["a.jpg"]["reason"]
    assert "'wolf' is not declared" in report["b.jpg"]["reason"]
    assert "640x48" in report["c.jpg"]["reason"]
    assert report["d.jpg"]["field"].startswith("objects.0")  # outside the image, as every import checks
    assert "zzz.jpg" in report
    assert all(i["objects"] == [] for i in json.loads(await export(admin, pid))["images"])
