"""``POST /projects/{id}/import`` (server/formats/_routes.py) against issue 15, F1: one 413 KB ZIP
of three 10000x10000 masks, posted by anyone, froze the server for 50 s. Now the caller is
checked before the body is read, a mask larger than its image is refused from its header, and
parsing runs in the worker pool (503 ``busy`` when that is full, while the loop keeps serving)."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from server import offload
from server.formats import masks
from server.settings import Settings
from tests.conftest import Api, UserFactory, add_member, make_project, make_settings
from tests.server._rows import make_images
from tests.server.test_offload import Gate, wait_for_pipe


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # One worker, no queue: a second heavy job is refused at once.
    return make_settings(database_url, tmp_path / "data", offload_workers=1, offload_queue=0,
                         max_upload_mb=1)


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _png(w: int, h: int, fill: int = 0) -> bytes:
    return cv2.imencode(".png", np.full((h, w), fill, np.uint8))[1].tobytes()


@pytest.fixture(scope="module")
def f1_zip() -> bytes:
    """The F1 payload: three 10000x10000 masks, a few hundred KB zipped."""
    big = _png(10_000, 10_000)
    return _zip({f"a.png/m{i}.png": big for i in range(3)})


async def test_the_caller_is_checked_before_the_body_is_read(
        anon: httpx.AsyncClient, admin: Api, users: UserFactory, f1_zip: bytes) -> None:
    pid = await make_project(admin)
    garbage = b"not a zip at all"
    url = f"/api/v1/projects/{pid}/import"
    # Parsing first answered these 400 bad_file: the body was read and decoded for anyone.
    resp = await anon.post(url, params={"format": "masks"}, content=garbage)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    viewer = await users("viewer")
    await add_member(admin, pid, viewer, role="viewer")
    resp = await viewer.client.post(url, params={"format": "masks"}, content=f1_zip)
    assert resp.status_code == 403
    stranger = await users("stranger")
    resp = await stranger.client.post(url, params={"format": "masks"}, content=garbage)
    assert resp.status_code == 404


async def test_masks_larger_than_their_image_are_refused_from_their_header(
        admin: Api, app: object, f1_zip: bytes) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"], 64, 48)  # type: ignore[arg-type]
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "masks"},
                                   content=f1_zip)
    assert resp.status_code == 422, resp.text
    [entry] = resp.json()["error"]["details"]["report"]
    assert entry["field"] == "a.png/m0.png"
    assert "10000x10000, larger than its image (64x48)" in entry["reason"]


def test_masks_for_unknown_images_are_not_decoded_and_the_pixel_limit_holds() -> None:
    # The header lies (a 2x2 PNG claiming 9000x9000): decoding it would fail with a different
    # message, so these refusals show nothing was decoded.
    liar = bytearray(_png(2, 2))
    liar[16:24] = (9000).to_bytes(4, "big") * 2
    body = _zip({"a.png/x.png": bytes(liar), "zzz.png/y.png": bytes(liar)})
    [a, zzz] = masks.parse(body, {"a.png": (10_000, 10_000)}, max_pixels=1_000_000)
    assert a.error == ("a.png/x.png", "a.png/x.png: the mask is 9000x9000, more than 1000000 pixels")
    assert zzz.error is None and zzz.objects == []  # run_import refuses the row by name
    assert masks.mask_size(_png(7, 3)) == (7, 3)
    bmp = cv2.imencode(".bmp", np.zeros((3, 7), np.uint8))[1].tobytes()
    assert masks.mask_size(bmp) == (7, 3)
    assert masks.mask_size(b"GIF89a...") is None


async def test_an_import_waits_in_the_pool_not_on_the_loop(
        admin: Api, anon: httpx.AsyncClient, app: object, tmp_path: Path) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"], 64, 48)  # type: ignore[arg-type]
    body = _zip({"a.png/cat.png": _png(64, 48, 255)})
    url = f"/api/v1/projects/{pid}/import"
    pool = offload.get()
    gate = Gate(tmp_path)
    holder = asyncio.create_task(pool.run(wait_for_pipe, gate.path, cost=pool.inline_cost))
    await asyncio.sleep(0)  # the holder takes the only worker
    busy = await admin.client.post(url, params={"format": "masks"}, content=body)
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
    assert (await anon.get("/healthz")).status_code == 200  # the loop is free meanwhile
    await gate.open()
    await holder
    done = await admin.client.post(url, params={"format": "masks"}, content=body)
    assert done.status_code == 200, done.text
    assert done.json()["images_with_object_changes"] == 1


async def test_the_file_may_come_as_a_multipart_form_field(
        admin: Api, anon: httpx.AsyncClient, app: object) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"], 64, 48)  # type: ignore[arg-type]
    url = f"/api/v1/projects/{pid}/import"
    csv_file = b"image,labels\na.png,cat\n"
    # What `curl -F file=@labels.csv` sends.
    resp = await admin.client.post(url, params={"format": "csv"}, files={"file": ("labels.csv", csv_file)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["images_with_label_changes"] == 1
    resp = await admin.client.post(url, params={"format": "csv"}, files={"other": ("x.csv", csv_file)})
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["field"] == "file"
    big = b"image,labels\n" + b"a.png,cat\n" * 120_000  # past the 1 MB limit
    resp = await admin.client.post(url, params={"format": "csv"}, files={"file": ("big.csv", big)})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_large"
    resp = await anon.post(url, params={"format": "csv"}, files={"file": ("labels.csv", csv_file)})
    assert resp.status_code == 401
