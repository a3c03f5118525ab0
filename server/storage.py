"""Content-addressed image files: decode to prove an image, thumbnail, stage, place, remove.

Layout under ``settings.image_dir``: ``<sha[:2]>/<sha>`` (the original bytes) and
``<sha[:2]>/<sha>.thumb.jpg``; ``tmp/`` holds staged files until the request's transaction
places them. Everything here is blocking: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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
class StagedImage:
    """A decoded, validated image written to the staging area, not yet in place."""

    sha256: str
    mime: str
    size_bytes: int
    width: int
    height: int
    staged: Path
    staged_thumb: Path


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


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def thumb_path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.thumb.jpg"

    def _write_temp(self, data: bytes) -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="stage-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return Path(name)

    def stage(self, data: bytes, max_bytes: int | None = None) -> StagedImage:
        """Prove ``data`` is an image, make its thumbnail and write both to the staging area."""
        if max_bytes is not None and len(data) > max_bytes:
            raise ImageRejected("too_large", f"the file is larger than {max_bytes} bytes")
        image = decode(data)
        thumb = thumbnail(image)
        height, width = image.shape[:2]
        del image
        staged = self._write_temp(data)
        try:
            staged_thumb = self._write_temp(thumb)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        return StagedImage(sha256=hashlib.sha256(data).hexdigest(), mime=sniff_mime(data),
                           size_bytes=len(data), width=int(width), height=int(height),
                           staged=staged, staged_thumb=staged_thumb)

    def place(self, item: StagedImage) -> None:
        """Move a staged image into place (atomic rename); identical content just dedupes."""
        final = self.path(item.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        for src, dst in ((item.staged, final), (item.staged_thumb, self.thumb_path(item.sha256))):
            if dst.exists():
                src.unlink(missing_ok=True)
            else:
                os.replace(src, dst)

    def discard(self, item: StagedImage) -> None:
        item.staged.unlink(missing_ok=True)
        item.staged_thumb.unlink(missing_ok=True)

    def remove(self, sha: str) -> None:
        self.path(sha).unlink(missing_ok=True)
        self.thumb_path(sha).unlink(missing_ok=True)

    def load(self, sha: str) -> np.ndarray:
        """The stored image as BGR uint8 (for server-side tools such as smart selection)."""
        return decode(self.path(sha).read_bytes())
