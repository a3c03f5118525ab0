"""Helpers of the image tests: small images, multipart files, ZIPs, upload calls."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from server.settings import Settings
from tests.conftest import Api

Files = list[tuple[str, tuple[str, bytes, str]]]


def png(seed: int = 0, w: int = 32, h: int = 24, ext: str = ".png") -> bytes:
    img = np.full((h, w, 3), (seed * 37) % 256, np.uint8)
    cv2.rectangle(img, (2, 2), (w // 2, h // 2), (seed % 256, 255 - seed % 256, 90), -1)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return bytes(buf)


def files(*items: tuple[str, bytes]) -> Files:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def make_zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


async def upload(api: Api, pid: int, items: Files, **data: str) -> Any:
    return await api.client.post(f"/api/v1/projects/{pid}/images", files=items, data=data)


async def upload_zip(api: Api, pid: int, archive: bytes, **data: str) -> Any:
    return await api.client.post(f"/api/v1/projects/{pid}/images/zip",
                                 files=[("file", ("a.zip", archive, "application/zip"))], data=data)


def stored_files(settings: Settings) -> list[Path]:
    """Files in the local store (write leftovers under images/tmp/ included)."""
    root = settings.image_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def by_name(resp: Any) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in resp.json()["results"]}
