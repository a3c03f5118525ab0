from __future__ import annotations

import hashlib
import pickle
import zlib

import cv2
import numpy as np
import pytest

from server.storage import (
    ImageRejected,
    Prepared,
    Refused,
    content_keys,
    decode,
    original_key,
    prepare,
    prepare_many,
    sniff_mime,
    thumb_key,
    thumbnail,
)


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


def test_prepare_hashes_measures_and_thumbnails() -> None:
    data = encode(".png", 300, 200)
    got = prepare(data)
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert (got.mime, got.size_bytes, got.width, got.height) == ("image/png", len(data), 300, 200)
    assert _decode(got.thumb).shape[:2] == (171, 256)
    with pytest.raises(ImageRejected) as err:
        prepare(data, max_bytes=len(data) - 1)
    assert err.value.code == "too_large"


def test_prepare_many_answers_each_file_and_pickles() -> None:
    good = encode(".jpg")
    out = prepare_many([good, b"junk"])
    assert isinstance(out[0], Prepared) and out[0].sha256 == hashlib.sha256(good).hexdigest()
    assert out[1] == Refused("not_an_image", "the file could not be decoded as an image")
    # The offload pool sends these across processes.
    assert pickle.loads(pickle.dumps(out)) == out


def test_keys_are_content_addressed_under_images() -> None:
    sha = "ab" + "0" * 62
    assert original_key(sha) == f"images/ab/{sha}"
    assert thumb_key(sha) == f"images/ab/{sha}.thumb.jpg"
    assert content_keys(sha) == (original_key(sha), thumb_key(sha))
