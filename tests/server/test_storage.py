from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from server.storage import ImageRejected, ImageStore, decode, sniff_mime, thumbnail


def encode(ext: str, w: int = 40, h: int = 30, value: int = 120) -> bytes:
    img = np.full((h, w, 3), value, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 3, (0, 0, 255), -1)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return bytes(buf)


def test_decode_reads_size_and_refuses_non_images() -> None:
    assert decode(encode(".png", 40, 30)).shape == (30, 40, 3)
    for junk in (b"", b"hello, world", encode(".png")[:30]):
        with pytest.raises(ImageRejected) as err:
            decode(junk)
        assert err.value.code == "not_an_image"


def test_decode_refuses_too_many_pixels() -> None:
    # Well under OpenCV's own cap, but over the one given: the post-decode check refuses it.
    with pytest.raises(ImageRejected) as err:
        decode(encode(".png", 200, 100), max_pixels=10_000)
    assert err.value.code == "too_many_pixels"


def _claim_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with an IHDR that claims other dimensions (and a valid CRC)."""
    ihdr = png[12:16] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + png[24:29]
    return png[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + png[33:]


def test_opencv_refuses_a_decompression_bomb_before_allocating() -> None:
    # A few hundred bytes claiming 12000x10000 = 120 MP: past MAX_PIXELS (100 MP).
    bomb = _claim_size(encode(".png"), 12000, 10000)
    with pytest.raises(ImageRejected) as err:
        decode(bomb)
    assert err.value.code == "too_many_pixels"


def _decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_thumbnail_fits_256() -> None:
    thumb = _decode(thumbnail(np.zeros((600, 1000, 3), np.uint8)))
    assert thumb.shape[:2] == (154, 256)
    small = _decode(thumbnail(np.zeros((20, 10, 3), np.uint8)))
    assert small.shape[:2] == (20, 10)


def test_sniff_mime() -> None:
    assert sniff_mime(encode(".png")) == "image/png"
    assert sniff_mime(encode(".jpg")) == "image/jpeg"
    assert sniff_mime(encode(".bmp")) == "image/bmp"
    assert sniff_mime(b"whatever") == "application/octet-stream"


def test_stage_place_dedupe_remove(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    data = encode(".png", 64, 48)
    first = store.stage(data)
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert (first.width, first.height, first.mime) == (64, 48, "image/png")
    assert not store.path(first.sha256).exists()  # staged only
    store.place(first)
    assert store.path(first.sha256).read_bytes() == data
    assert store.thumb_path(first.sha256).is_file()
    second = store.stage(data)
    store.place(second)  # same content: deduped, the staged copies are gone
    assert list((store.root / "tmp").iterdir()) == []
    assert store.load(first.sha256).shape == (48, 64, 3)
    store.remove(first.sha256)
    assert not store.path(first.sha256).exists() and not store.thumb_path(first.sha256).exists()


def test_stage_refuses_oversize_and_discard_cleans(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    data = encode(".png")
    with pytest.raises(ImageRejected) as err:
        store.stage(data, max_bytes=len(data) - 1)
    assert err.value.code == "too_large"
    staged = store.stage(data)
    store.discard(staged)
    assert list((store.root / "tmp").iterdir()) == []
