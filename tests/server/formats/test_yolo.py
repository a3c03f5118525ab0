"""YOLO export follows the ultralytics layout."""

from __future__ import annotations

import io
import zipfile

from starlette.applications import Starlette

from tests.conftest import Api
from tests.server.formats._seed import H, W, seeded_project
from tests.server.formats.test_native import export


def _yaml_names(text: str) -> dict[int, str]:
    lines = text.splitlines()
    at = lines.index("names:")
    return {int(k): v.strip().strip('"') for k, v in (ln.strip().split(":", 1) for ln in lines[at + 1:])}


async def test_yolo_detect_layout_and_boxes(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    z = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "yolo")))
    assert {"data.yaml", "train.txt", "labels/train/a.txt", "labels/train/b.txt", "labels/train/c.txt"} <= set(z.namelist())
    text = z.read("data.yaml").decode()
    assert "train: train.txt" in text and "nc: 5" in text
    names = _yaml_names(text)
    assert names == {0: "blob", 1: "cat", 2: "dog", 3: "dot", 4: "road"}
    b = z.read("labels/train/b.txt").decode().split()
    assert b[0] == "1" and [float(v) for v in b[1:]] == [round(45 / W, 6), round(34 / H, 6), round(10 / W, 6), round(8 / H, 6)]
    lines = z.read("labels/train/a.txt").decode().splitlines()
    assert len(lines) == 4  # bbox, two polygons, bitmap; no point/polyline
    for line in lines:
        cls, *vals = line.split()
        assert int(cls) in names and len(vals) == 4 and all(0 <= float(v) <= 1 for v in vals)
    assert z.read("labels/train/c.txt") == b""


async def test_yolo_segment_writes_polygons(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    z = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "yolo", task="segment")))
    lines = z.read("labels/train/a.txt").decode().splitlines()
    polygon = next(ln for ln in lines if ln.startswith("2 ") and len(ln.split()) == 7)
    assert [float(v) for v in polygon.split()[1:3]] == [round(30.2 / W, 6), round(20.1 / H, 6)]
    assert all(len(ln.split()) % 2 == 1 and len(ln.split()) >= 7 for ln in lines)
    bad = await admin.client.get(f"/api/v1/projects/{pid}/export", params={"format": "yolo", "task": "pose"})
    assert bad.status_code == 422
