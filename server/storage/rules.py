"""The pure rules of stored images: where a content lives (keys), what a file is (sniffing,
decoding within the pixel limit), its thumbnail, and :func:`prepare_many`, the CPU step of an
upload that runs in the offload pool (``server/offload.py``).

No I/O here: the backends (``server/storage/local.py``, ``server/storage/s3.py``) move bytes.
Keys are relative to a store's root: ``images/<sha[:2]>/<sha>`` (the original bytes),
``images/<sha[:2]>/<sha>.thumb.jpg`` and ``exports/...``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "EXPORTS", "IMAGES", "MAX_PIXELS", "THUMB_MIME", "THUMB_SIZE", "ImageRejected", "Prepared",
    "Refused", "content_keys", "decode", "original_key", "prepare", "prepare_many", "sniff_mime",
    "thumb_key", "thumbnail",
]

# OpenCV refuses images past OPENCV_IO_MAX_IMAGE_PIXELS *before* allocating them (decompression
# bombs); server/__init__.py sets it to this before cv2 loads. Checked again after decoding.
MAX_PIXELS = 100_000_000

THUMB_SIZE = 256
THUMB_MIME = "image/jpeg"

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
]


class ImageRejected(Exception):
    """A file that is not a usable image; ``code`` goes into the per-file error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Prepared:
    """What the upload learned of a valid image (its bytes stay with the caller)."""

    sha256: str
    mime: str
    size_bytes: int
    width: int
    height: int
    thumb: bytes


@dataclass(frozen=True)
class Refused:
    """Why a file is not an image (picklable, unlike :class:`ImageRejected`)."""

    code: str
    message: str

    def error(self) -> ImageRejected:
        return ImageRejected(self.code, self.message)


IMAGES = "images/"
EXPORTS = "exports/"


def original_key(sha: str) -> str:
    return f"{IMAGES}{sha[:2]}/{sha}"


def thumb_key(sha: str) -> str:
    return f"{IMAGES}{sha[:2]}/{sha}.thumb.jpg"


def content_keys(sha: str) -> tuple[str, str]:
    """Every key a content owns (deleted together with its last image)."""
    return original_key(sha), thumb_key(sha)


def sniff_mime(data: bytes) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode to a BGR uint8 array, or raise :class:`ImageRejected`."""
    if not data:
        raise ImageRejected("not_an_image", "the file is empty")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            raise ImageRejected("too_many_pixels",
                                f"the image has more than {max_pixels} pixels") from None
        raise ImageRejected("not_an_image", "the file could not be decoded as an image") from None
    if image is None or image.ndim < 2 or image.size == 0:
        raise ImageRejected("not_an_image", "the file could not be decoded as an image")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageRejected("too_many_pixels", f"the image has more than {max_pixels} pixels")
    return image


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE) -> bytes:
    """A JPEG whose longer side is at most ``size`` pixels."""
    h, w = image.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        dims = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, dims, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:  # pragma: no cover - encoding a valid BGR array does not fail
        raise ImageRejected("thumbnail_failed", "could not make a thumbnail")
    return bytes(buf)


def prepare(data: bytes, max_bytes: int | None = None) -> Prepared:
    """Prove ``data`` is an image and make its thumbnail, or raise :class:`ImageRejected`."""
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageRejected("too_large", f"the file is larger than {max_bytes} bytes")
    image = decode(data)
    height, width = image.shape[:2]
    thumb = thumbnail(image)
    return Prepared(sha256=hashlib.sha256(data).hexdigest(), mime=sniff_mime(data),
                    size_bytes=len(data), width=int(width), height=int(height), thumb=thumb)


def prepare_many(blobs: Sequence[bytes], max_bytes: int | None = None) -> list[Prepared | Refused]:
    """:func:`prepare` for a batch (one offload round trip for many small files)."""
    out: list[Prepared | Refused] = []
    for data in blobs:
        try:
            out.append(prepare(data, max_bytes))
        except ImageRejected as exc:
            out.append(Refused(exc.code, exc.message))
    return out
