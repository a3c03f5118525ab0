"""CVAT for images 1.1 XML (``annotations.xml``): export and import.

Export: ``<meta>`` declares every label with the attribute names its objects use, then one
``<image id name width height>`` per image with its objects in z order:

* ``bbox`` -> ``<box xtl ytl xbr ybr>``; ``polygon`` -> one ``<polygon points="x,y;...">`` per
  part (a polygon with holes -> ``<mask>``, CVAT polygons have none); ``bitmap`` -> ``<mask rle
  left top width height>`` (CVAT's RLE: row-major runs over the mask's box, background first);
  ``polyline`` -> ``<polyline>``; ``point`` -> ``<points>``; classification labels -> ``<tag>``
  (the default first); rpy objects and object keypoints have no place;
* ``occluded`` -> ``occluded="1"``, ``z`` -> ``z_order``, attributes -> ``<attribute name>``.

Import reads the same: shapes, masks, tags, attributes (``true``/``false`` -> booleans, numbers of
a ``number`` attribute -> numbers), occluded, z_order; a box with ``rotation`` -> a polygon turned
about its center as CVAT turns it; several ``<points>`` -> one point object each. A shape whose
label ``<meta>`` does not declare, an unsupported shape (ellipse, cuboid, skeleton), a track, or
coordinates outside the image refuse the row. The XML is parsed with defusedxml: DTDs refused.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

import numpy as np
import numpy.typing as npt
from sqlalchemy import String, cast, select

from server.formats._importing import ImportFileError, Incoming
from server.formats._names import NameIndex
from server.formats._outline import polygon_pixels
from server.formats._reading import parse_xml
from server.formats._source import (
    ExportJob,
    ImageRecord,
    iter_images,
    label_defs,
    object_labels,
    reading,
)
from server.geometry.rle import rle_decode, rle_encode
from server.models import LabelObjectRow

MEDIA_TYPE = "application/xml"
SUFFIX = "xml"


def _clean(text: str) -> str:
    # XML 1.0 cannot hold most control characters even escaped: they are dropped.
    return "".join(c for c in text if c >= " " or c in "\t\n\r")


def _esc(text: str) -> str:
    """Text content, escaped (attribute values go through ``quoteattr(_clean(...))`` instead)."""
    return _clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _esc(str(value))


def _pts(points: list[list[float]]) -> str:
    return ";".join(f"{x!r},{y!r}" for x, y in points)


def mask_rle(mask: npt.NDArray[np.bool_]) -> tuple[str, int, int, int, int] | None:
    """CVAT's mask RLE: (runs, left, top, width, height) of the mask's box, row-major, the first
    run background (0 when the box starts with a mask pixel)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top: rows[-1] + 1, left: cols[-1] + 1]
    flat = crop.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return ",".join(map(str, runs)), left, top, crop.shape[1], crop.shape[0]


def _common(obj: dict[str, Any]) -> str:
    return (f' label={quoteattr(_clean(obj["label"]))} source="manual" occluded="{int(obj["occluded"])}"'
            f' z_order="{obj["z"]}"')


def _children(obj: dict[str, Any]) -> str:
    return "".join(f"<attribute name={quoteattr(_clean(str(k)))}>{_attr(v)}</attribute>"
                   for k, v in obj["attributes"].items())


def _mask_el(obj: dict[str, Any], mask: npt.NDArray[np.bool_]) -> list[str]:
    enc = mask_rle(mask)
    if enc is None:
        return []
    runs, left, top, w, h = enc
    return [f'    <mask{_common(obj)} rle="{runs}" left="{left}" top="{top}" width="{w}" height="{h}">'
            f"{_children(obj)}</mask>"]


def shapes_for(obj: dict[str, Any], w: int, h: int) -> list[str]:
    g, kind = obj["geometry"], obj["type"]
    if kind == "bbox":
        return [f'    <box{_common(obj)} xtl="{g["x"]!r}" ytl="{g["y"]!r}" xbr="{g["x"] + g["w"]!r}" '
                f'ybr="{g["y"] + g["h"]!r}">{_children(obj)}</box>']
    if kind == "polygon":
        if any(p.get("holes") for p in g["parts"]):
            mask, (x0, y0) = polygon_pixels(g, w, h)[:2]
            full = np.zeros((h, w), dtype=bool)
            full[y0: y0 + mask.shape[0], x0: x0 + mask.shape[1]] = mask
            return _mask_el(obj, full)
        return [f'    <polygon{_common(obj)} points="{_pts(p["exterior"])}">{_children(obj)}</polygon>'
                for p in g["parts"]]
    if kind == "bitmap":
        return _mask_el(obj, rle_decode(g["rle"]))
    if kind == "polyline":
        return [f'    <polyline{_common(obj)} points="{_pts(g["points"])}">{_children(obj)}</polyline>']
    if kind == "point":
        return [f'    <points{_common(obj)} points="{g["x"]!r},{g["y"]!r}">{_children(obj)}</points>']
    return []


def image_xml(img: ImageRecord, frame: int) -> str:
    out = [f'  <image id="{frame}" name={quoteattr(_clean(img.name))} width="{img.width}" height="{img.height}">']
    for s in sorted(img.labels, key=lambda s: not s.is_default):
        out.append(f'    <tag label={quoteattr(_clean(s.label))} source="manual"></tag>')
    for obj in img.objects:
        out += shapes_for(obj, img.width, img.height)
    out.append("  </image>")
    return "\n".join(out) + "\n"


async def _meta(job: ExportJob) -> str:
    """``<meta>`` with every label: the label definitions and object labels, each with the
    attribute names its objects use (read up front: ``<meta>`` comes before the images)."""
    names = dict.fromkeys(sorted({d["name"] for d in await label_defs(job.sessions, job.project_id)}
                                 | set(await object_labels(job.sessions, job.project_id))))
    attrs: dict[str, dict[str, None]] = {}
    o = LabelObjectRow
    async with reading(job.sessions) as session:
        rows = await session.execute(select(o.label, o.attributes).where(
            o.project_id == job.project_id, cast(o.attributes, String) != "{}"))
        for label, values in rows:
            attrs.setdefault(label, {}).update(dict.fromkeys(values or {}))
    labels = []
    for n in names:
        a = "".join(f"<attribute><name>{_esc(str(k))}</name><mutable>False</mutable>"
                    f"<input_type>text</input_type><default_value></default_value><values></values></attribute>"
                    for k in attrs.get(n, {}))
        labels.append(f"<label><name>{_esc(n)}</name><type>any</type><attributes>{a}</attributes></label>")
    return (f'  <meta><task><name>project {job.project_id}</name><mode>annotation</mode>'
            f'<labels>{"".join(labels)}</labels></task></meta>\n')


def _batch_xml(batch: list[ImageRecord], frame: int) -> str:
    return "".join(image_xml(img, frame + i) for i, img in enumerate(batch))


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    yield b'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
    yield (await _meta(job)).encode()
    frame = 0
    async for batch in iter_images(job.sessions, job.project_id, job.flt):
        yield (await asyncio.to_thread(_batch_xml, batch, frame)).encode()  # masks: off the loop
        frame += len(batch)
    yield b"</annotations>\n"


# --- import ----------------------------------------------------------------------------------

_UNSUPPORTED = {"ellipse", "cuboid", "skeleton", "cuboid_3d"}


def _floats(el: Element, *keys: str) -> list[float]:
    out = []
    for k in keys:
        v = float(el.attrib[k]) if k in el.attrib else math.nan
        if not math.isfinite(v):
            raise ValueError(f"{k} must be a number")
        out.append(v)
    return out


def _points(el: Element) -> list[list[float]]:
    pts = []
    for pair in el.attrib.get("points", "").split(";"):
        x, y = (float(v) for v in pair.split(","))
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError("points must be numbers")
        pts.append([x, y])
    return pts


def mask_from_rle(runs: str, left: int, top: int, w: int, h: int, size: tuple[int, int]) -> npt.NDArray[np.bool_]:
    counts = np.array([int(v) for v in runs.split(",")], dtype=np.int64)
    if (counts < 0).any() or counts.sum() != w * h:
        raise ValueError(f"the mask's runs must add up to its width x height ({w}x{h})")
    iw, ih = size
    if left < 0 or top < 0 or left + w > iw or top + h > ih:
        raise ValueError("the mask lies outside the image")
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    crop = np.repeat(values, counts).reshape(h, w)
    full = np.zeros((ih, iw), dtype=bool)
    full[top: top + h, left: left + w] = crop
    return full


def _value(text: str, input_type: str | None) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if input_type == "number":
        try:
            num = float(text)
        except ValueError:
            return text
        return int(num) if num.is_integer() else num
    return text


def _shape(el: Element, n: int, size: tuple[int, int], types: dict[str, str]) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"label": el.attrib.get("label", ""), "occluded": el.attrib.get("occluded") == "1",
                            "z": int(el.attrib.get("z_order", "0")),
                            "attributes": {a.attrib.get("name", ""): _value((a.text or "").strip(), types.get(a.attrib.get("name", "")))
                                           for a in el.findall("attribute")}}
    oid = f"cvat-{n}"
    if el.tag == "box":
        x0, y0, x1, y1 = _floats(el, "xtl", "ytl", "xbr", "ybr")
        angle = float(el.attrib.get("rotation", "0"))
        if angle % 360 == 0:
            return [{**base, "id": oid, "type": "bbox", "geometry": {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}}]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2  # CVAT turns a box about its center, clockwise
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        ring = [[cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c]
                for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        return [{**base, "id": oid, "type": "polygon", "geometry": {"parts": [{"exterior": ring}]}}]
    if el.tag == "polygon":
        return [{**base, "id": oid, "type": "polygon", "geometry": {"parts": [{"exterior": _points(el)}]}}]
    if el.tag == "polyline":
        return [{**base, "id": oid, "type": "polyline", "geometry": {"points": _points(el)}}]
    if el.tag == "points":
        pts = _points(el)
        return [{**base, "id": oid if len(pts) == 1 else f"{oid}-{k + 1}", "type": "point",
                 "geometry": {"x": x, "y": y}} for k, (x, y) in enumerate(pts)]
    if el.tag == "mask":
        left, top, w, h = (int(float(el.attrib[k])) for k in ("left", "top", "width", "height"))
        mask = mask_from_rle(el.attrib.get("rle", ""), left, top, w, h, size)
        return [{**base, "id": oid, "type": "bitmap", "geometry": {"rle": rle_encode(mask)}}]
    raise ValueError(f"<{el.tag}> shapes are not supported")


def _meta_labels(root: Element) -> tuple[set[str] | None, dict[str, str]]:
    """Declared label names (None when the file declares none) and attribute input types."""
    labels = root.findall("meta/task/labels/label") + root.findall("meta/project/labels/label")
    types = {(a.findtext("name") or ""): (a.findtext("input_type") or "text")
             for lab in labels for a in lab.findall("attributes/attribute")}
    return ({(lab.findtext("name") or "") for lab in labels} if labels else None), types


def parse(body: bytes, index: NameIndex) -> list[Incoming]:
    root = parse_xml(body, "annotations.xml")
    if root.tag != "annotations":
        raise ImportFileError("a CVAT for images file has the root element <annotations>")
    if root.find("track") is not None:
        raise ImportFileError("<track> elements (CVAT for video) are not read: export the task "
                              "as CVAT for images 1.1")
    declared, types = _meta_labels(root)
    out: list[Incoming] = []
    for row, im in enumerate(root.findall("image"), start=1):
        name, size = index.resolve(im.attrib.get("name", ""))
        rec = Incoming(row, name, objects=[], has_objects=True)
        out.append(rec)
        if size is None:
            continue  # no such image (or no name): run_import refuses the row by name
        if {"width", "height"} <= im.attrib.keys() and (im.attrib["width"], im.attrib["height"]) != tuple(map(str, size)):
            rec.error = ("image", f"the file says {im.attrib['width']}x{im.attrib['height']}, "
                                  f"the project's image is {size[0]}x{size[1]}")
            continue
        tags = []
        for n, el in enumerate(im, start=1):
            label = el.attrib.get("label", "")
            try:
                if declared is not None and label not in declared:
                    raise ValueError(f"label {label!r} is not declared in <meta>")
                if el.tag == "tag":
                    tags.append(label)
                elif el.tag in _UNSUPPORTED:
                    raise ValueError(f"<{el.tag}> shapes are not supported")
                else:
                    rec.objects.extend(_shape(el, n, size, types))
            except (ValueError, KeyError) as exc:
                rec.error = (f"image {row} <{el.tag}> {n}", str(exc) if isinstance(exc, ValueError)
                             else f"missing attribute {exc}")
                break
        if tags and rec.error is None:
            rec.labels, rec.has_labels = list(dict.fromkeys(tags)), True
    if not out:
        raise ImportFileError("the file has no <image> elements")
    return out
