"""Pascal VOC as a ZIP: ``Annotations/<image stem>.xml`` per image and
``ImageSets/Main/default.txt``. Boxes, polygons and bitmaps become ``<object>`` with a
``bndbox`` of the pixels they cover (as Labelhub rasterizes them), in VOC's 1-based inclusive pixel indices
(``xmin = first column + 1``, ``xmax = last column + 1``). Attributes go to ``<attributes>``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any
from xml.sax.saxutils import escape

from server.formats._outline import crop, polygon_pixels
from server.formats._source import ExportJob, ImageRecord, iter_images
from server.formats._zip import Spool, ZipStream, member_path, names_rows, suffix, unique_stems
from server.geometry.rle import rle_bbox

MEDIA_TYPE = "application/zip"
SUFFIX = "zip"


def pixel_box(obj: dict[str, Any], w: int, h: int) -> tuple[int, int, int, int] | None:
    """(first column, first row, end column, end row) of the pixels the object covers (0-based, end exclusive)."""
    g = obj["geometry"]
    if obj["type"] == "bbox":
        x0, y0, x1, y1 = g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]
    elif obj["type"] == "polygon":
        # The pixels Labelhub rasterizes (not the vertex extent: a sharp corner covers no pixel).
        mask, (ox, oy) = polygon_pixels(g, w, h)[:2]
        small, (cx, cy) = crop(mask)
        if not small.size:
            return None
        return ox + cx, oy + cy, ox + cx + small.shape[1], oy + cy + small.shape[0]
    elif obj["type"] == "bitmap":
        bx, by, bw, bh = rle_bbox(g["rle"])
        if not bw or not bh:
            return None
        return int(bx), int(by), int(bx + bw), int(by + bh)
    else:
        return None
    c0, c1 = (min(max(math.ceil(v - 0.5), 0), w) for v in (x0, x1))
    r0, r1 = (min(max(math.ceil(v - 0.5), 0), h) for v in (y0, y1))
    return (c0, r0, c1, r1) if c1 > c0 and r1 > r0 else None


def xml_for(img: ImageRecord, path: str | None = None) -> str:
    """The image's annotation; ``path`` is its unique file path in the archive (folders kept)."""
    path = path or member_path(img.name)
    # <segmented> says SegmentationClass/ PNGs exist; this export writes none.
    out = ["<annotation>", "  <folder>JPEGImages</folder>", f"  <filename>{escape(path)}</filename>",
           "  <source><database>Labelhub</database></source>",
           f"  <size><width>{img.width}</width><height>{img.height}</height><depth>3</depth></size>",
           "  <segmented>0</segmented>"]
    for obj in img.objects:
        box = pixel_box(obj, img.width, img.height)
        if box is None:
            continue
        c0, r0, c1, r1 = box
        attrs = "".join(f"<attribute><name>{escape(str(k))}</name><value>{escape(str(v))}</value></attribute>"
                        for k, v in obj["attributes"].items())
        out += ["  <object>", f"    <name>{escape(obj['label'])}</name>", "    <pose>Unspecified</pose>",
                "    <truncated>0</truncated>", "    <difficult>0</difficult>",
                f"    <occluded>{int(obj['occluded'])}</occluded>",
                f"    <bndbox><xmin>{c0 + 1}</xmin><ymin>{r0 + 1}</ymin><xmax>{c1}</xmax><ymax>{r1}</ymax></bndbox>",
                f"    <attributes>{attrs}</attributes>", "  </object>"]
    out.append("</annotation>")
    return "\n".join(out) + "\n"


def _write_batch(z: ZipStream, batch: list[ImageRecord], stems: list[str]) -> str:
    for img, st in zip(batch, stems, strict=True):
        z.add(f"Annotations/{st}.xml", xml_for(img, f"{st}.{suffix(img.name)}"))
    return "".join(f"{st}\n" for st in stems)


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    z = ZipStream()
    seen: dict[str, int] = {}
    listing, names = Spool(), Spool()
    names.write("stem,image\n")
    try:
        async for batch in iter_images(job.sessions, job.project_id, job.flt, labels=False):
            stems = unique_stems([im.name for im in batch], seen)
            listing.write(await asyncio.to_thread(_write_batch, z, batch, stems))  # off the event loop
            names.write(names_rows(stems, [im.name for im in batch]))
            yield z.drain()
        for chunk in z.add_chunks("ImageSets/Main/default.txt", listing.chunks()):
            yield chunk
        for chunk in z.add_chunks("names.csv", names.chunks()):
            yield chunk
    finally:
        listing.close()
        names.close()
    yield z.close()
