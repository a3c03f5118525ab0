"""Masks as image files in a ZIP, one per object: ``<image stem>/<object id>.png``, 8-bit
grayscale, 255 where the object is and 0 elsewhere, image-sized; ``?mask_format=bmp`` writes
BMP files instead (``.bmp``, the same pixels). Bitmaps by default;
``?types=bitmap,polygon,bbox`` rasterizes those types too. ``index.csv`` lists
``image,object_id,label,file``.

Import (``format=masks``): a ZIP of ``<image name>/<label>.png`` (or ``.bmp``) files, or of the
exported layout with its ``index.csv``; every nonzero pixel is the object. Each file becomes one
bitmap object.
"""

from __future__ import annotations

import asyncio
import csv
import io
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import cv2
import numpy as np

from server import offload
from server.formats._images import add_images
from server.formats._importing import ImportFileError, Incoming
from server.formats._source import ExportJob, ImageRecord, iter_images
from server.formats._zip import Spool, ZipStream, suffix, unique_stems
from server.formats.table import guard_cell, unguard_cell
from server.geometry.raster import rasterize
from server.geometry.rle import rle_encode
from server.geometry.validation import parse_object

MEDIA_TYPE = "application/zip"
SUFFIX = "zip"
MAX_MASK_PIXELS = 1 << 28
MAX_INDEX_BYTES = 64 << 20


def png(mask: np.ndarray) -> bytes:
    return encode(mask, "png")


def encode(mask: np.ndarray, fmt: str) -> bytes:
    """A 0/1 mask as an 8-bit grayscale PNG or BMP file (0 and 255)."""
    ok, data = cv2.imencode(f".{fmt}", mask.astype(np.uint8) * 255)
    assert ok
    return bytes(data)


def _csv_row(*values: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([guard_cell(v) for v in values])
    return buf.getvalue()


def _render(img: ImageRecord, stem: str, types: set[str],
            fmt: str = "png") -> list[tuple[str, bytes, str]]:
    """The image's masks as (path, file, index.csv row), in a worker process
    (server/offload.py): each is rasterized and encoded at the image's full size."""
    out = []
    for obj in img.objects:
        if obj["type"] not in types or obj["type"] not in ("bitmap", "polygon", "bbox"):
            continue
        path = f"{stem}/{obj['id']}.{fmt}"
        out.append((path, encode(rasterize(parse_object(obj), img.height, img.width), fmt),
                    _csv_row(img.name, obj["id"], obj["label"], path)))
    return out


def _add_all(z: ZipStream, files: list[tuple[str, bytes, str]]) -> None:
    for path, data, _row in files:
        z.add(path, data)


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    types = set(job.options.get("types", "bitmap").split(","))
    fmt = job.options.get("mask_format", "png")
    z = ZipStream()
    index = Spool()
    index.write(_csv_row("image", "object_id", "label", "file"))
    seen: dict[str, int] = {}
    try:
        async for batch in iter_images(job.sessions, job.project_id, job.flt, labels=False):
            stems = unique_stems([im.name for im in batch], seen)
            for img, stem in zip(batch, stems, strict=True):
                # One job per image, so heavy edits interleave with a long export; an export
                # under way waits for the pool rather than failing half-way.
                cost = img.width * img.height // 4 * len(img.objects)
                files = await offload.run(_render, img, stem, types, fmt, cost=cost, wait=True)
                await asyncio.to_thread(_add_all, z, files)  # deflate releases the GIL
                index.write("".join(row for _p, _d, row in files))
            yield z.drain()
        for chunk in z.add_chunks("index.csv", index.chunks()):
            yield chunk
    finally:
        index.close()
    async for chunk in add_images(z, job, lambda st, name: f"images/{st}.{suffix(name)}"):
        yield chunk
    yield z.close()


def mask_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a BMP's info header, read before any decoding;
    ``None`` when the file is neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(int(width)), abs(int(height))
    return None


def _decode(data: bytes, where: str, limit: tuple[int, int] | None, max_pixels: int) -> np.ndarray:
    """The mask of a PNG or BMP file; its header is checked against ``limit`` (the image's
    width and height) and ``max_pixels`` first, so a small file that claims a huge picture (a
    decompression bomb) is refused without being decoded."""
    size = mask_size(data)
    if size is None:
        raise ValueError(f"{where}: not a PNG or BMP image")
    w, h = size
    if w * h > max_pixels:
        raise ValueError(f"{where}: the mask is {w}x{h}, more than {max_pixels} pixels")
    if limit is not None and (w > limit[0] or h > limit[1]):
        raise ValueError(f"{where}: the mask is {w}x{h}, larger than its image ({limit[0]}x{limit[1]})")
    try:  # OpenCV refuses images past OPENCV_IO_MAX_IMAGE_PIXELS (server/__init__.py) unallocated
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        raise ValueError(f"{where}: not a PNG or BMP image, or too large") from None
    if arr is None:
        raise ValueError(f"{where}: not a PNG or BMP image")
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    return arr != 0


def _entries(archive: zipfile.ZipFile) -> list[tuple[str, str, str, str]]:
    """(path, image, object id, label) of each mask file, in path order."""
    index: dict[str, tuple[str, str, str]] = {}
    names = archive.namelist()
    if "index.csv" in names:
        if archive.getinfo("index.csv").file_size > MAX_INDEX_BYTES:
            raise ImportFileError("index.csv is too large")
        try:
            rows = csv.DictReader(io.StringIO(archive.read("index.csv").decode("utf-8-sig")))
            index = {unguard_cell(r["file"]): (unguard_cell(r["image"]), unguard_cell(r["object_id"]),
                                               unguard_cell(r["label"])) for r in rows}
        except (KeyError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile) as exc:
            raise ImportFileError(f"index.csv must be UTF-8 with the columns image, object_id, label, file ({exc})") from None
    out = []
    for path in sorted(names):
        if path.endswith("/") or not path.lower().endswith((".png", ".bmp")):
            continue
        if path in index:
            image, oid, label = index[path]
        else:
            folder, _, file = path.rpartition("/")
            image, label = folder.rsplit("/", 1)[-1], file.rsplit(".", 1)[0].split("#", 1)[0]
            oid = f"mask-{file.rsplit('.', 1)[0]}"
        out.append((path, image, oid, label))
    return out


def _open(body: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile:
        raise ImportFileError("masks are uploaded as a ZIP of <image name>/<label>.png files") from None


def image_names(body: bytes) -> set[str]:
    """The image names the ZIP's masks are for (its directory only: nothing is decoded)."""
    return {image for _, image, _, _ in _entries(_open(body))}


def parse(body: bytes, sizes: Mapping[str, tuple[int, int]] | None = None,
          max_pixels: int = MAX_MASK_PIXELS) -> list[Incoming]:
    """The masks of the ZIP as one bitmap object each. ``sizes`` (image name -> width, height):
    a mask for an image not in it is not decoded (the import refuses its row), one larger than
    its image is refused from its header. CPU-heavy: the import route runs it in the worker
    pool (server/offload.py)."""
    archive = _open(body)
    records: dict[str, Incoming] = {}
    for row, (path, image, oid, label) in enumerate(_entries(archive), start=1):
        rec = records.setdefault(image, Incoming(row, image, objects=[], has_objects=True))
        if rec.error is not None:
            continue
        if sizes is not None and image not in sizes:
            continue  # no such image: run_import refuses the row by name, nothing to decode
        info = archive.getinfo(path)
        if info.file_size > MAX_MASK_PIXELS * 4:
            rec.error = (path, "mask file too large")
            continue
        try:
            data = archive.read(path)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
            rec.error = (path, f"cannot be read from the ZIP: {exc}")
            continue
        limit = sizes.get(image) if sizes is not None else None
        try:
            obj: dict[str, Any] = {"id": oid, "type": "bitmap", "label": label,
                                   "geometry": {"rle": rle_encode(_decode(data, path, limit, max_pixels))}}
        except ValueError as exc:
            rec.error = (path, str(exc))
            continue
        rec.objects.append(obj)
    if not records:
        raise ImportFileError("the ZIP holds no .png or .bmp masks")
    return list(records.values())
