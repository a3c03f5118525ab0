"""PNG masks: export one file per object, import PNG/BMP masks per object."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
from starlette.applications import Starlette

from server.geometry.rle import rle_decode
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats._seed import H, W, bitmap, seeded_project
from tests.server.formats.test_native import export


async def test_masks_export_one_png_per_bitmap(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    z = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "masks")))
    assert set(z.namelist()) == {"a/m1.png", "index.csv"}
    png = cv2.imdecode(np.frombuffer(z.read("a/m1.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.shape == (H, W) and set(np.unique(png)) == {0, 255}
    assert np.array_equal(png == 255, rle_decode(bitmap()))
    more = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "masks", types="bitmap,bbox")))
    assert "a/b1.png" in more.namelist() and "b/b2.png" in more.namelist()
    # The same masks as BMP files, when a tool wants bitmaps as BMP.
    bmps = zipfile.ZipFile(io.BytesIO(await export(admin, pid, "masks", mask_format="bmp")))
    assert set(bmps.namelist()) == {"a/m1.bmp", "index.csv"}
    assert bmps.read("a/m1.bmp")[:2] == b"BM"
    bmp = cv2.imdecode(np.frombuffer(bmps.read("a/m1.bmp"), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(bmp, png)
    assert "a/m1.bmp" in bmps.read("index.csv").decode()
    bad = await admin.client.get(f"/api/v1/projects/{pid}/export",
                                 params={"format": "masks", "mask_format": "gif"})
    assert bad.status_code == 422


async def test_masks_import_png_and_bmp(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png", "b.png"], W, H)
    mask = rle_decode(bitmap()).astype(np.uint8) * 255
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.png/cat.png", cv2.imencode(".png", mask)[1].tobytes())
        z.writestr("b.png/dog.bmp", cv2.imencode(".bmp", cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR))[1].tobytes())
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "masks"}, content=buf.getvalue())
    assert resp.status_code == 200, resp.text
    images = json.loads(await export(admin, pid))["images"]
    for img, label in zip(images, ["cat", "dog"], strict=True):
        [obj] = img["objects"]
        assert obj["type"] == "bitmap" and obj["label"] == label
        assert np.array_equal(rle_decode(obj["geometry"]["rle"]), mask > 0)
    wrong = io.BytesIO()
    with zipfile.ZipFile(wrong, "w") as z:
        z.writestr("a.png/cat.png", cv2.imencode(".png", np.zeros((5, 5), np.uint8))[1].tobytes())
    bad = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "masks"}, content=wrong.getvalue())
    assert bad.status_code == 422 and "size" in bad.json()["error"]["details"]["report"][0]["field"]


def test_index_csv_cells_never_start_a_formula() -> None:
    from server.formats.masks import _csv_row
    assert _csv_row("=cmd|' /C calc'!A0.png", "o1", "@SUM(1)", "a/o1.png") == \
        "'=cmd|' /C calc'!A0.png,o1,'@SUM(1),a/o1.png\n"
