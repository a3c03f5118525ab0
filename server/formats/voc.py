"""Pascal VOC as a ZIP: ``Annotations/<image stem>.xml`` per image and
``ImageSets/Main/default.txt``. Boxes, polygons and bitmaps become ``<object>`` with a
``bndbox`` of the pixels they cover (as Labelhub rasterizes them), in VOC's 1-based inclusive pixel indices
(``xmin = first column + 1``, ``xmax = last column + 1``). Attributes go to ``<attributes>``.

Import (``format=voc``): the same ZIP (any VOC detection layout): each ``<object>`` becomes a box
over exactly the pixels its ``bndbox`` names; ``difficult``/``truncated`` of 1 become attributes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from server.formats._images import layout_export
from server.formats._importing import ImportFileError, Incoming
from server.formats._names import NameIndex
from server.formats._outline import crop, polygon_pixels
from server.formats._reading import open_zip, parse_xml, read_member
from server.formats._source import ExportJob, ImageRecord, object_labels
from server.formats._zip import ZipStream, member_path, suffix
from server.formats.table import unguard_cell
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


def labelmap(names: list[str]) -> str:
    """``labelmap.txt`` as CVAT and datumaro read it (``name:color:parts:actions``): without it
    they know only VOC's 20 classes. A ``:`` in a name cannot be written there (it becomes
    ``_``, so those readers refuse objects with that label; Labelhub's import reads ``<name>``)."""
    return "# label:color_rgb:parts:actions\n" + "".join(f"{n.replace(':', '_')}:::\n" for n in names)


def _labels_of(batch: list[ImageRecord], labels: dict[str, None]) -> None:
    for img in batch:
        for obj in img.objects:
            labels.setdefault(obj["label"], None)


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    labels = dict.fromkeys(await object_labels(job.sessions, job.project_id))
    z = ZipStream()

    def write_batch(batch: list[ImageRecord], stems: list[str]) -> str:
        _labels_of(batch, labels)  # a label that appeared while the export ran
        return _write_batch(z, batch, stems)

    async for chunk in layout_export(z, job, write_batch, "ImageSets/Main/default.txt",
                                     lambda st, name: f"JPEGImages/{st}.{suffix(name)}"):
        yield chunk
    z.add("labelmap.txt", labelmap(list(labels)))
    yield z.close()


# --- import ----------------------------------------------------------------------------------


def _text(el: Element, path: str, default: str = "") -> str:
    return (el.findtext(path) or default).strip()


def _voc_object(el: Element, n: int) -> dict[str, Any]:
    box = el.find("bndbox")
    if box is None:
        raise ValueError("an <object> needs a <bndbox>")
    # 1-based inclusive pixel indices -> pixel-corner coordinates (xmin 11 .. xmax 40 covers
    # columns 10..39, x 10.0 to 40.0).
    x0, y0, x1, y1 = (float(_text(box, k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    if x1 < x0 or y1 < y0:
        raise ValueError("xmax/ymax must not be smaller than xmin/ymin")
    attributes: dict[str, Any] = {}
    for attr in el.findall("attributes/attribute"):
        attributes[_text(attr, "name")] = _text(attr, "value")
    for flag in ("difficult", "truncated"):
        if _text(el, flag, "0") == "1":
            attributes[flag] = True
    return {"id": f"voc-{n}", "type": "bbox", "label": _text(el, "name"),
            "geometry": {"x": x0 - 1, "y": y0 - 1, "w": x1 - x0 + 1, "h": y1 - y0 + 1},
            "attributes": attributes, "occluded": _text(el, "occluded", "0") == "1"}


def parse(body: bytes, index: NameIndex) -> list[Incoming]:
    """A ZIP with ``Annotations/**/*.xml`` (Pascal VOC): one record per file, its boxes the
    image's objects. The image is the one ``names.csv`` (this exporter's map) names, else the
    annotation's path under ``Annotations/`` with ``<filename>``'s extension, else ``<filename>``."""
    archive = open_zip(body, "a Pascal VOC ZIP (Annotations/*.xml)")
    paths = sorted(p for p in archive.namelist() if p.lower().endswith(".xml"))
    if not paths:
        raise ImportFileError("the ZIP holds no Annotations/*.xml files")
    stems: dict[str, str] = {}
    if "names.csv" in archive.namelist():
        rows = csv.DictReader(io.StringIO(read_member(archive, "names.csv").decode("utf-8-sig")))
        stems = {unguard_cell(r.get("stem") or ""): unguard_cell(r.get("image") or "") for r in rows}
    out: list[Incoming] = []
    for row, path in enumerate(paths, start=1):
        try:
            root = parse_xml(read_member(archive, path), path)
        except ImportFileError as exc:
            out.append(Incoming(row, path, error=(path, str(exc))))
            continue
        st = f"/{path}".rpartition("/Annotations/")[2].removesuffix(".xml") if "Annotations/" in path \
            else path.rsplit("/", 1)[-1].removesuffix(".xml")
        filename = _text(root, "filename")
        if st in stems:
            name, size = index.resolve(stems[st])
        else:
            ext = suffix(filename, "") if filename else ""
            name, size = index.resolve(f"{st}.{ext}") if ext else (st, None)
            if size is None:
                name, size = index.resolve(filename) if filename else index.resolve(st, stem=True)
        rec = Incoming(row, name, objects=[], has_objects=True)
        out.append(rec)
        if root.tag != "annotation":
            rec.error = (path, "the root element must be <annotation>")
            continue
        for n, el in enumerate(root.findall("object"), start=1):
            try:
                rec.objects.append(_voc_object(el, n))
            except ValueError as exc:
                rec.error = (f"{path}: object {n}", str(exc))
                break
    return out
