"""COCO instances (with keypoints).

Export: one category per object label (ids 1.. in name order; a category lists the keypoint
names its objects use). Per object:

* ``bbox`` -> ``bbox`` as drawn; ``segmentation`` is the rectangle of pixels the box covers;
* ``polygon`` -> ``segmentation`` as polygon lists: the exact pixel outline of the polygon as
  Labelhub rasterizes it, so ``annToMask`` gives the same pixels (``bbox`` is the vertex extent);
* polygons with holes and ``bitmap`` -> ``segmentation`` as compressed RLE, ``iscrowd: 0`` (an
  instance trainers learn from; ``?crowd_rle=1`` gives the old ``iscrowd: 1``); all others
  ``iscrowd: 0``;
* ``area`` is the pixel count; points, polylines and rpy objects are not COCO instances and are
  left out. Each annotation carries ``labelhub: {"id", "type"}``, ``attributes`` and
  ``occluded`` (extra keys COCO readers ignore; the importer uses them).

The file is written in one pass: ``annotations`` stream out as the images are read, the images
list is spooled and follows them (key order means nothing to JSON readers).

Import reads the same (and plain COCO): polygon lists -> polygons, RLE -> bitmaps, an empty
segmentation -> a box from ``bbox``.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from sqlalchemy import String, cast, select

from server import strict_json
from server.formats._importing import ImportFileError, Incoming
from server.formats._outline import crop, outline, polygon_pixels
from server.formats._outline_batch import Outline, outlines
from server.formats._source import ExportJob, ImageRecord, iter_images, reading
from server.geometry.rle import counts_to_string, rle_area, rle_bbox, rle_encode
from server.models import LabelObjectRow

MEDIA_TYPE = "application/json"
SUFFIX = "json"


_SPOOL_BYTES = 8 << 20
INSTANCE_TYPES = ("bbox", "polygon", "bitmap")
# One encoder for the whole export: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


async def _categories(job: ExportJob) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Category ids by label, and each category's keypoint names (first-seen order)."""
    keypoints: dict[str, list[str]] = {}
    col = LabelObjectRow
    async with reading(job.sessions) as session:
        names = set((await session.execute(select(col.label).distinct().where(
            col.project_id == job.project_id, col.type.in_(INSTANCE_TYPES)))).scalars())
        # Only the (usually few) objects that have keypoints are read in full.
        rows = await session.execute(select(col.label, col.keypoints).where(
            col.project_id == job.project_id, col.type.in_(("bbox", "polygon")),
            cast(col.keypoints, String) != "[]").order_by(col.image_id, col.z, col.id))
        for label, kps in rows:
            known = keypoints.setdefault(label, [])
            for kp in kps or []:
                if kp["name"] not in known:
                    known.append(kp["name"])
    return {n: i for i, n in enumerate(sorted(names), start=1)}, keypoints


def box_pixels(g: dict[str, Any], w: int, h: int) -> tuple[int, int, int, int]:
    """Columns ``c0..c1`` and rows ``r0..r1`` (end exclusive) of the pixels whose centers lie in
    the box, clipped to the image; an empty box gives ``c0 == c1`` and ``r0 == r1``."""
    c0, c1 = (min(max(math.ceil(v - 0.5), 0), w) for v in (g["x"], g["x"] + g["w"]))
    r0, r1 = (min(max(math.ceil(v - 0.5), 0), h) for v in (g["y"], g["y"] + g["h"]))
    if c1 <= c0 or r1 <= r0:
        return c0, r0, c0, r0
    return c0, r0, c1, r1


def _tail(obj: dict[str, Any], kind: str, ann_id: int, image_id: int, category_id: int) -> str:
    """The keys ``_convert`` adds after ``iscrowd`` (no keypoints), as ``_dumps`` writes them."""
    attrs = obj["attributes"]
    return (f'"id":{ann_id},"image_id":{image_id},"category_id":{category_id},'
            f'"labelhub":{{"id":{_dumps(obj["id"])},"type":"{kind}"}},'
            f'"attributes":{_dumps(attrs) if attrs else "{}"},"occluded":{"true" if obj["occluded"] else "false"}}}')


def box_text(obj: dict[str, Any], w: int, h: int, ann_id: int, image_id: int, category_id: int) -> str:
    """What ``_dumps`` gives for a box's annotation without keypoints, written directly: boxes
    are most of a big export, and building and encoding a dict each costs three times as much.
    (JSON writes a number as its ``repr``.)"""
    g = obj["geometry"]
    c0, r0, c1, r1 = box_pixels(g, w, h)
    seg = f"[[{c0},{r0},{c1},{r0},{c1},{r1},{c0},{r1}]]" if c1 > c0 else "[]"
    return (f'{{"segmentation":{seg},"area":{(c1 - c0) * (r1 - r0)},'
            f'"bbox":[{g["x"]!r},{g["y"]!r},{g["w"]!r},{g["h"]!r}],"iscrowd":0,'
            + _tail(obj, "bbox", ann_id, image_id, category_id))


def polygon_text(obj: dict[str, Any], traced: Outline, w: int, h: int, ann_id: int, image_id: int,
                 category_id: int, crowd_rle: bool = False) -> str:
    """What ``_dumps`` gives for ``annotation()`` of a polygon without keypoints, from its
    ``Outline`` (``_outline_batch``): the corner lists are written straight to text (a corner is
    an integer, which JSON writes as the float ``x.0``)."""
    if traced.rings is None:  # holes: the pixels as RLE
        full = np.zeros((h, w), dtype=bool)
        x0, y0 = traced.origin
        mask = traced.mask
        assert mask is not None
        full[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask
        seg, crowd = _dumps(rle_encode(full)), int(crowd_rle)
    else:
        seg = "[" + ",".join(f"[{'.0,'.join(map(str, ring))}.0]" if ring else "[]" for ring in traced.rings) + "]"
        crowd = 0
    bx, by, bw, bh = traced.bbox
    return (f'{{"segmentation":{seg},"area":{traced.area},"bbox":[{bx!r},{by!r},{bw!r},{bh!r}],'
            f'"iscrowd":{crowd},' + _tail(obj, "polygon", ann_id, image_id, category_id))


def annotation(obj: dict[str, Any], w: int, h: int, crowd_rle: bool = False) -> dict[str, Any] | None:
    """The COCO fields of one object (without ids/category), or None if it is not an instance.
    RLE segmentations are ``iscrowd: 0`` unless ``crowd_rle`` (the old export's convention,
    which most trainers read as "ignore this region")."""
    g, kind = obj["geometry"], obj["type"]
    if kind == "bbox":
        c0, r0, c1, r1 = box_pixels(g, w, h)
        rect: list[list[int]] = [[c0, r0, c1, r0, c1, r1, c0, r1]] if c1 > c0 else []
        return {"segmentation": rect, "area": (c1 - c0) * (r1 - r0), "bbox": [g["x"], g["y"], g["w"], g["h"]],
                "iscrowd": 0}
    if kind == "bitmap":
        rle = g["rle"]
        return {"segmentation": {"size": rle["size"], "counts": rle["counts"]}, "area": rle_area(rle),
                "bbox": rle_bbox(rle), "iscrowd": int(crowd_rle)}
    if kind != "polygon":
        return None
    mask, (x0, y0), bbox = polygon_pixels(g, w, h)
    area = int(mask.sum())
    if area == 0:
        return None
    small, (cx, cy) = crop(mask)
    rings = outline(small, (x0 + cx, y0 + cy))
    if any(holes for _ext, holes in rings):
        full = np.zeros((h, w), dtype=bool)
        full[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask
        return {"segmentation": rle_encode(full), "area": area, "bbox": bbox, "iscrowd": int(crowd_rle)}
    seg: list[list[float]] = [[float(v) for pt in ext for v in pt] for ext, _holes in rings]
    return {"segmentation": seg, "area": area, "bbox": bbox, "iscrowd": 0}


def _convert(batch: list[ImageRecord], cats: dict[str, int], kp_names: dict[str, list[str]],
             ann_id: int, crowd_rle: bool = False) -> tuple[list[str], list[str], int]:
    """One batch as JSON texts (annotations, images) and the last annotation id used. Runs in a
    worker thread: polygons are rasterized and traced here (all of the batch's at once, see
    ``_outline_batch``), which must not stall the server."""
    polygons = [(obj, im) for im in batch for obj in im.objects
                if obj["type"] == "polygon" and not kp_names.get(obj["label"])]
    traced = dict(zip((id(obj) for obj, _im in polygons),
                      outlines([obj["geometry"] for obj, _im in polygons], [(im.width, im.height) for _obj, im in polygons]),
                      strict=True))
    out: list[str] = []
    for im in batch:
        for obj in im.objects:
            if obj["type"] not in INSTANCE_TYPES:
                continue
            if obj["label"] not in cats:  # a label that appeared while the export ran
                cats[obj["label"]] = len(cats) + 1
            names = kp_names.get(obj["label"], [])
            if obj["type"] == "bbox" and not names:
                ann_id += 1
                out.append(box_text(obj, im.width, im.height, ann_id, im.id, cats[obj["label"]]))
                continue
            if obj["type"] == "polygon" and not names:
                outline_ = traced[id(obj)]
                if outline_ is not None:
                    ann_id += 1
                    out.append(polygon_text(obj, outline_, im.width, im.height, ann_id, im.id, cats[obj["label"]],
                                            crowd_rle))
                continue
            ann = annotation(obj, im.width, im.height, crowd_rle)
            if ann is None:
                continue
            ann_id += 1
            ann.update(id=ann_id, image_id=im.id, category_id=cats[obj["label"]],
                       labelhub={"id": obj["id"], "type": obj["type"]},
                       attributes=obj["attributes"], occluded=obj["occluded"])
            if names:
                by_name = {k["name"]: k for k in obj["keypoints"]}
                flat: list[float] = []
                for n in names:
                    k = by_name.get(n)
                    flat += [k["x"], k["y"], 2 if k["visible"] else 1] if k else [0, 0, 0]
                ann["keypoints"], ann["num_keypoints"] = flat, len(by_name)
            out.append(_dumps(ann))
    images = [_dumps({"id": im.id, "file_name": im.name, "width": im.width, "height": im.height})
              for im in batch]
    return out, images, ann_id


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    """One pass over the images: annotations are streamed, the (much smaller) images list is
    spooled (to disk past a few MB) and written after them, so every image and its annotations
    come from the same read. COCO readers do not care about the order of the top-level keys."""
    cats, kp_names = await _categories(job)
    crowd_rle = job.options.get("crowd_rle") in ("1", "true")
    seq = f',"labelhub_seq":{job.seq}' if job.seq is not None else ""  # the op-log position
    yield f'{{"info":{{"description":"Labelhub export","version":"1.0"{seq}}},"licenses":[],"annotations":['.encode()
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        ann_id, sep = 0, ""
        async for batch in iter_images(job.sessions, job.project_id, job.flt, labels=False):
            out, images, ann_id = await asyncio.to_thread(_convert, batch, cats, kp_names, ann_id, crowd_rle)
            if out:
                yield (sep + ",".join(out)).encode()
                sep = ","
            spool.write((b"," if spool.tell() else b"") + ",".join(images).encode())
        yield b'],"images":['
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            yield chunk
    categories = [{"id": i, "name": n, "supercategory": "", **({"keypoints": kp_names[n], "skeleton": []}
                                                                 if kp_names.get(n) else {})}
                  for n, i in cats.items()]
    yield f'],"categories":{_dumps(categories)}}}\n'.encode()


def _object(ann: dict[str, Any], cat: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = ann["labelhub"] if isinstance(ann.get("labelhub"), dict) else {}
    seg = ann.get("segmentation")
    obj: dict[str, Any] = {"id": str(meta.get("id") or f"coco-{ann.get('id')}"), "label": cat.get("name", "")}
    if meta.get("type") == "bbox" or not seg:
        x, y, w, h = ann.get("bbox") or [0, 0, 0, 0]
        obj.update(type="bbox", geometry={"x": x, "y": y, "w": w, "h": h})
    elif isinstance(seg, list):
        parts = [{"exterior": [[p[i], p[i + 1]] for i in range(0, len(p) - 1, 2)]} for p in seg if isinstance(p, list)]
        obj.update(type="polygon", geometry={"parts": parts})
    elif isinstance(seg, dict):
        counts = seg.get("counts")
        if isinstance(counts, list):  # uncompressed RLE
            counts = counts_to_string(np.asarray(counts, dtype=np.int64))
        obj.update(type="bitmap", geometry={"rle": {"size": seg.get("size"), "counts": counts}})
    else:
        raise ValueError("segmentation must be a list of polygons or an RLE object")
    names = cat.get("keypoints") or []
    kps = ann.get("keypoints") or []
    if names and kps and obj["type"] in ("bbox", "polygon"):
        obj["keypoints"] = [{"name": n, "x": kps[3 * i], "y": kps[3 * i + 1], "visible": kps[3 * i + 2] == 2}
                            for i, n in enumerate(names) if 3 * i + 2 < len(kps) and kps[3 * i + 2] > 0]
    if isinstance(ann.get("attributes"), dict):
        obj["attributes"] = ann["attributes"]
    if isinstance(ann.get("occluded"), bool):
        obj["occluded"] = ann["occluded"]
    return obj


def _id(value: Any) -> int | str | None:
    """An id usable as a key (COCO ids are integers; strings are tolerated)."""
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def parse(body: bytes) -> list[Incoming]:
    try:
        data = strict_json.loads(body)
    except strict_json.JsonInputError as exc:
        raise ImportFileError(exc.message) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations", []), list) or not isinstance(data.get("categories", []), list):
        raise ImportFileError("a COCO file is an object with images, annotations and categories lists")
    cats = {_id(c.get("id")): c for c in data.get("categories", []) if isinstance(c, dict)}
    images: dict[Any, Incoming] = {}
    for n, im in enumerate(data["images"], start=1):
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str) or _id(im.get("id")) is None:
            images[f"bad-{n}"] = Incoming(n, "", error=(f"images.{n - 1}", "needs an id and a file_name"))
            continue
        images[_id(im["id"])] = Incoming(n, im["file_name"], objects=[], has_objects=True)
    for n, ann in enumerate(data.get("annotations", [])):
        rec = images.get(_id(ann.get("image_id"))) if isinstance(ann, dict) else None
        if rec is None or rec.error is not None:
            raise ImportFileError(f"annotations.{n}: image_id does not name an image of the file")
        cat = cats.get(_id(ann.get("category_id")))
        if cat is None:
            rec.error = (f"annotations.{n}.category_id", "no such category")
            continue
        try:
            rec.objects.append(_object(ann, cat))
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError) as exc:
            rec.error = (f"annotations.{n}.segmentation", str(exc) or "invalid")
    return list(images.values())
