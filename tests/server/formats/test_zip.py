"""Archive paths keep folders (``cat/001.jpg`` and ``dog/001.jpg`` stay apart) in every ZIP
format, and ``names.csv`` maps each file back to its image."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
import zipfile

from starlette.applications import Starlette

from server.formats._zip import member_path, stem, unique_stems
from server.storage import open_store, original_key
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats.test_native import export


def test_paths_keep_folders_and_stay_unique() -> None:
    assert member_path("../x/./cat\\001.jpg") == "x/cat/001.jpg"
    assert stem("cat/001.jpg") == "cat/001" and stem(".hidden") == ".hidden"
    seen: dict[str, int] = {}
    assert unique_stems(["cat/001.jpg", "dog/001.jpg", "cat/001.png", "Cat/001.jpg", "cat/001_2.jpg"],
                        seen) == ["cat/001", "dog/001", "cat/001_2", "Cat/001_3", "cat/001_2_2"]


async def cat_and_dog(admin: Api, app: Starlette) -> int:
    """Two images named 001.jpg in different folders, a box on each (the dog's is elsewhere)."""
    pid = await make_project(admin, "CatDog")
    await make_images(app, pid, ["cat/001.jpg", "dog/001.jpg"], 64, 48)
    body = {"images": [
        {"name": "cat/001.jpg", "objects": [{"id": "c", "type": "bbox", "label": "cat",
                                             "geometry": {"x": 1, "y": 2, "w": 10, "h": 10}}]},
        {"name": "dog/001.jpg", "objects": [{"id": "d", "type": "bbox", "label": "dog",
                                             "geometry": {"x": 30, "y": 20, "w": 20, "h": 20}}]}]}
    r = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json=body)
    assert r.status_code == 200, r.text
    return pid


def _names(z: zipfile.ZipFile) -> dict[str, str]:
    return {row["stem"]: row["image"] for row in csv.DictReader(io.StringIO(z.read("names.csv").decode()))}


async def test_cat_and_dog_stay_apart_in_every_zip(admin: Api, app: Starlette) -> None:
    pid = await cat_and_dog(admin, app)
    voc = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "voc")))
    for animal in ("cat", "dog"):
        root = ET.fromstring(voc.read(f"Annotations/{animal}/001.xml"))
        assert root.findtext("filename") == f"{animal}/001.jpg"
        assert root.findtext("segmented") == "0"  # no SegmentationClass PNGs are written
        assert [o.findtext("name") for o in root.findall("object")] == [animal]
    assert _names(voc) == {"cat/001": "cat/001.jpg", "dog/001": "dog/001.jpg"}
    yolo = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "yolo")))
    assert yolo.read("train.txt").decode().split() == ["./images/train/cat/001.jpg", "./images/train/dog/001.jpg"]
    assert yolo.read("labels/train/dog/001.txt").decode().startswith("1 ")
    assert _names(yolo) == _names(voc)
    masks = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "masks", types="bbox")))
    assert sorted(n for n in masks.namelist() if n.endswith(".png")) == ["cat/001/c.png", "dog/001/d.png"]
    coco = json.loads(await export(admin, pid, "coco"))
    assert sorted(i["file_name"] for i in coco["images"]) == ["cat/001.jpg", "dog/001.jpg"]


async def test_exports_can_include_the_image_files(admin: Api, app: Starlette) -> None:
    pid = await cat_and_dog(admin, app)
    sha = hashlib.sha256(f"{pid}/cat/001.jpg".encode()).hexdigest()  # as make_images names it
    # The dog's file is missing.
    await open_store(app.state.settings).put_many([(original_key(sha), b"\xff\xd8 the cat's jpeg")])
    yolo = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "yolo", images="1")))
    assert yolo.read("images/train/cat/001.jpg") == b"\xff\xd8 the cat's jpeg"
    assert yolo.read("missing.txt").decode() == "dog/001.jpg\n"  # listed, not a failed export
    voc = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "voc", images="1")))
    assert voc.read("JPEGImages/cat/001.jpg") == b"\xff\xd8 the cat's jpeg"
    resp = await admin.client.get(f"/api/v1/projects/{pid}/export", params={"format": "coco", "images": "1"})
    assert resp.headers["content-type"] == "application/zip" and "coco.zip" in resp.headers["content-disposition"]
    wrapped = zipfile.ZipFile(io.BytesIO(resp.content))
    coco = json.loads(wrapped.read("annotations.json"))
    [cat] = [i["file_name"] for i in coco["images"] if i["file_name"].startswith("cat")]
    assert wrapped.read(f"images/{cat}") == b"\xff\xd8 the cat's jpeg"
    assert _names(wrapped) == {"cat/001": "cat/001.jpg", "dog/001": "dog/001.jpg"}
