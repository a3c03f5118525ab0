"""Uploads through REST: files, ZIPs, labels, duplicates, refusals (server/_uploads.py)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import cv2
import numpy as np
import pytest
from starlette.applications import Starlette

from server._uploads import clean_name
from server.settings import Settings
from tests.conftest import Api, make_project
from tests.server._images import (
    by_name,
    files,
    make_zip,
    png,
    stored_files,
    upload,
    upload_zip,
)


async def test_upload_png_with_labels_and_a_text_file(admin: Api, settings: Settings) -> None:
    pid = await make_project(admin)
    resp = await upload(admin, pid, files(("cat.png", png(1)), ("notes.txt", b"not an image")),
                        labels="cat, dog")
    assert resp.status_code == 201, resp.text
    results = by_name(resp)
    assert results["notes.txt"]["ok"] is False
    assert results["notes.txt"]["error"]["code"] == "not_an_image"
    image = results["cat.png"]["image"]
    assert results["cat.png"]["ok"] is True and results["cat.png"]["duplicate"] is False
    assert (image["width"], image["height"], image["mime"]) == (32, 24, "image/png")
    assert {lab["name"] for lab in image["labels"]} == {"cat", "dog"}
    assert [lab["name"] for lab in image["labels"] if lab["is_default"]] == ["cat"]
    assert all(lab["source"] == "manual" for lab in image["labels"])
    listed = (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()
    assert listed["total"] == 1 and listed["images"][0]["labels"] == image["labels"]
    assert listed["images"][0]["labeled"] is True
    assert len(stored_files(settings)) == 2  # the original and its thumbnail


async def test_all_bad_is_422_and_writes_nothing(admin: Api, settings: Settings) -> None:
    pid = await make_project(admin)
    resp = await upload(admin, pid, files(("a.txt", b"x"), ("b.png", png(1)[:40])))
    assert resp.status_code == 422
    assert [r["ok"] for r in resp.json()["results"]] == [False, False]
    assert stored_files(settings) == []
    resp = await upload(admin, pid, [])
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid"


async def test_duplicates_and_folder_names(admin: Api, settings: Settings) -> None:
    pid = await make_project(admin)
    first = await upload(admin, pid, files(("dir/sub/a.png", png(2)), ("../../etc/b.png", png(3))))
    assert first.status_code == 201
    assert set(by_name(first)) == {"dir/sub/a.png", "etc/b.png"}
    again = await upload(admin, pid, files(("copy.png", png(2)), ("copy2.png", png(2))), labels="x")
    results = again.json()["results"]
    assert [r["duplicate"] for r in results] == [True, True]
    assert results[0]["image"]["name"] == "dir/sub/a.png"
    assert results[0]["image"]["labels"][0]["name"] == "x"
    assert results[0]["image"]["labels"][0]["is_default"] is True
    assert (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["total"] == 2
    assert len(stored_files(settings)) == 4
    # The same content in another project is a new image sharing the stored file.
    other = await make_project(admin, "Other")
    resp = await upload(admin, other, files(("a.png", png(2))))
    assert resp.json()["results"][0]["duplicate"] is False
    assert len(stored_files(settings)) == 4


async def test_zip_with_folder_labels(admin: Api) -> None:
    pid = await make_project(admin)
    archive = make_zip({"dogs/a.png": png(1), "cats/b.jpg": png(2, ext=".jpg"),
                        "animals/cats/c.png": png(3), "__MACOSX/dogs/._a.png": b"junk",
                        ".hidden.png": png(4), "readme.txt": b"hello"})
    resp = await upload_zip(admin, pid, archive, labels_from_folders="true")
    assert resp.status_code == 201, resp.text
    results = by_name(resp)
    assert set(results) == {"dogs/a.png", "cats/b.jpg", "animals/cats/c.png", "readme.txt"}
    assert results["readme.txt"]["ok"] is False

    def names(r: dict[str, Any]) -> set[str]:
        return {lab["name"] for lab in r["image"]["labels"]}

    assert names(results["dogs/a.png"]) == {"dogs"}
    assert names(results["cats/b.jpg"]) == {"cats"}
    assert names(results["animals/cats/c.png"]) == {"animals", "cats"}
    assert results["cats/b.jpg"]["image"]["mime"] == "image/jpeg"
    dogs = (await admin.client.get(f"/api/v1/projects/{pid}/images?label=dogs")).json()
    assert [i["name"] for i in dogs["images"]] == ["dogs/a.png"]
    long = await upload_zip(admin, pid, make_zip({"f" * 300 + "/e.png": png(8)}),
                            labels_from_folders="true")
    assert long.status_code == 201
    assert long.json()["results"][0]["image"]["labels"][0]["name"] == "f" * 200
    plain = await upload_zip(admin, pid, make_zip({"x/d.png": png(9)}), labels_from_folders="false")
    assert plain.json()["results"][0]["image"]["labels"] == []


@pytest.mark.parametrize("entry", ["../evil.png", "/abs/evil.png", "ok/../../evil.png", "C:/evil.png"])
async def test_zip_slip_refused(admin: Api, settings: Settings, entry: str) -> None:
    pid = await make_project(admin)
    resp = await upload_zip(admin, pid, make_zip({"good.png": png(1), entry: png(2)}))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "unsafe_path"
    assert stored_files(settings) == []
    assert (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["total"] == 0


@pytest.fixture
def small_settings(settings: Settings) -> Settings:
    settings.max_upload_mb = 1
    return settings


async def test_zip_bomb_refused(app: Starlette, small_settings: Settings, admin: Api) -> None:
    pid = await make_project(admin)
    # Past the uncompressed total (4x the 1 MB upload limit) yet a tiny upload.
    big = make_zip({"a.png": png(1), "b.bin": bytes(5 << 20)})
    assert len(big) < 100_000
    resp = await upload_zip(admin, pid, big)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "zip_too_large"
    # Under the total but compressed > 100:1.
    resp = await upload_zip(admin, pid, make_zip({"a.png": png(1), "b.bin": bytes(2 << 20)}))
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "zip_bomb"
    resp = await upload_zip(admin, pid, b"not a zip")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "bad_zip"
    assert stored_files(small_settings) == []
    # An entry whose header understates its size is never read past the declared size: it
    # fails on its own and the rest of the archive is kept.
    liar = _shrink_declared_size(make_zip({"a.png": png(1), "c.bin": bytes(3 << 20)}), "c.bin")
    resp = await upload_zip(admin, pid, liar)
    assert resp.status_code == 201
    assert by_name(resp)["c.bin"]["error"]["code"] == "unreadable"
    assert len(stored_files(small_settings)) == 2


def _shrink_declared_size(archive: bytes, name: str) -> bytes:
    """Rewrite the declared uncompressed size of an entry to 1000 bytes (local + central header)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        info = zf.getinfo(name)
    data = bytearray(archive)
    real = info.file_size.to_bytes(4, "little")
    fake = (1000).to_bytes(4, "little")
    count = data.count(real)
    assert count >= 2
    return bytes(data.replace(real, fake))


async def test_oversize_body_refused(small_settings: Settings, admin: Api) -> None:
    pid = await make_project(admin)
    noise = np.random.default_rng(1).integers(0, 255, (700, 700, 3), np.uint8)
    ok, buf = cv2.imencode(".png", noise)
    assert ok and len(buf) > 1 << 20
    resp = await upload(admin, pid, files(("small.png", png(1)), ("big.png", bytes(buf))))
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_large"

    async def chunks() -> Any:  # no Content-Length: counted while streaming
        body = b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n"
        yield body
        for _ in range(40):
            yield bytes(64 << 10)

    resp = await admin.client.post(f"/api/v1/projects/{pid}/images", content=chunks(),
                                   headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert resp.status_code == 413
    assert stored_files(small_settings) == []
    assert (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["total"] == 0


def test_clean_name() -> None:
    assert clean_name("a\x00b.png") == "ab.png"
    assert clean_name("C:\\photos\\..\\x.png") == "photos/x.png"
    assert clean_name("/etc/./passwd") == "etc/passwd"
    assert clean_name("../..") == "unnamed" and clean_name(None) == "unnamed"
