"""COCO annotations as JSON text, a batch of images at a time (``coco.export`` streams them).

``annotation`` is the general path: one object to the dict ``_dumps`` encodes. A big export is
nearly all boxes and polygons without keypoints, and those are written straight to text with
the very bytes ``_dumps(annotation(...) + ids)`` gives (the tests compare the two): a batch's
boxes have their pixel extents computed together in NumPy, its polygons are traced together
(``_outline_batch``), and a polygon whose pixels have holes gets its RLE from its window
(``window_rle``) instead of from a mask of the whole image.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from json.encoder import encode_basestring
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from server.formats._outline import trace
from server.formats._outline_batch import Outline, outlines
from server.formats._source import ImageRecord, Packed, decode_objects
from server.geometry.rle import counts_to_string, rle_area, rle_bbox, rle_encode

INSTANCE_TYPES = ("bbox", "polygon", "bitmap")
# One encoder for the whole export: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def box_pixels(g: dict[str, Any], w: int, h: int) -> tuple[int, int, int, int]:
    """Columns ``c0..c1`` and rows ``r0..r1`` (end exclusive) of the pixels whose centers lie in
    the box, clipped to the image; an empty box gives ``c0 == c1`` and ``r0 == r1``."""
    c0, c1 = (min(max(math.ceil(v - 0.5), 0), w) for v in (g["x"], g["x"] + g["w"]))
    r0, r1 = (min(max(math.ceil(v - 0.5), 0), h) for v in (g["y"], g["y"] + g["h"]))
    if c1 <= c0 or r1 <= r0:
        return c0, r0, c0, r0
    return c0, r0, c1, r1


def boxes_pixels(boxes: list[tuple[dict[str, Any], int, int]]) -> list[tuple[int, int, int, int]]:
    """``box_pixels`` of many ``(geometry, w, h)`` at once (the same float arithmetic)."""
    if not boxes:
        return []
    xywh = np.array([(g["x"], g["y"], g["w"], g["h"]) for g, _w, _h in boxes], dtype=np.float64)
    cells = _cells(xywh, np.array([w for _g, w, _h in boxes]), np.array([h for _g, _w, h in boxes]))
    return list(zip(*cells, strict=True))


def _cells(xywh: npt.NDArray[np.float64], iw: npt.NDArray[Any], ih: npt.NDArray[Any]) -> list[list[int]]:
    """``c0``, ``r0``, ``c1``, ``r1`` lists of boxes ``[x, y, w, h]`` in images ``iw`` x ``ih``."""
    x, y, bw, bh = xywh.T
    c0 = np.clip(np.ceil(x - 0.5), 0, iw)
    c1 = np.clip(np.ceil(x + bw - 0.5), 0, iw)
    r0 = np.clip(np.ceil(y - 0.5), 0, ih)
    r1 = np.clip(np.ceil(y + bh - 0.5), 0, ih)
    empty = (c1 <= c0) | (r1 <= r0)
    c1, r1 = np.where(empty, c0, c1), np.where(empty, r0, r1)
    return [v.astype(np.int64).tolist() for v in (c0, r0, c1, r1)]


def number_texts(values: list[Any]) -> list[str]:
    """What JSON writes for each number (its ``repr``), for many at once: orjson writes the same
    shortest round-trip digits 3x faster (checked on 2 x 10^7 random doubles) except where
    ``repr`` switches to an exponent (below 1e-4, at 1e16 and over: those take ``repr``)."""
    try:
        text = orjson.dumps(values)
    except TypeError:  # an integer past 64 bits
        return [repr(v) for v in values]
    if not values or b"t" in text or b"f" in text or b"n" in text:  # booleans, NaN: as before
        return [repr(v) for v in values]
    out = text[1:-1].decode().split(",")
    size = np.abs(np.asarray(values, dtype=np.float64))
    for i in np.flatnonzero((size >= 1e16) | ((size < 1e-4) & (size > 0))).tolist():
        out[i] = repr(values[i])
    return out


def _rest(obj: dict[str, Any], kind: str, image_id: int, category_id: int) -> str:
    """The keys ``_convert`` adds after ``iscrowd`` and ``id`` (no keypoints), as ``_dumps``
    writes them."""
    oid, attrs = obj["id"], obj["attributes"]
    return (f'"image_id":{image_id},"category_id":{category_id},'
            f'"labelhub":{{"id":{encode_basestring(oid) if isinstance(oid, str) else _dumps(oid)},"type":"{kind}"}},'
            f'"attributes":{_dumps(attrs) if attrs else "{}"},"occluded":{"true" if obj["occluded"] else "false"}}}')


def _tail(obj: dict[str, Any], kind: str, ann_id: int, image_id: int, category_id: int) -> str:
    """The keys ``_convert`` adds after ``iscrowd`` (no keypoints), as ``_dumps`` writes them."""
    return f'"id":{ann_id},' + _rest(obj, kind, image_id, category_id)


def box_parts(boxes: list[tuple[dict[str, Any], ImageRecord]], cats: dict[str, int]) -> list[tuple[str, str]]:
    """What ``_dumps`` gives for boxes' annotations without keypoints, written directly (boxes
    are most of a big export; building and encoding a dict each cost three times as much), in two
    parts per box: up to ``iscrowd`` and from ``image_id`` on, for the caller to put the
    annotation id between."""
    geometries = [obj["geometry"] for obj, _im in boxes]
    values = [v for g in geometries for v in (g["x"], g["y"], g["w"], g["h"])]
    nums = number_texts(values)
    c0, r0, c1, r1 = _cells(np.array(values, dtype=np.float64).reshape(-1, 4),
                            np.array([im.width for _obj, im in boxes]),
                            np.array([im.height for _obj, im in boxes]))
    return [(f'{{"segmentation":{f"[[{a},{b},{c},{b},{c},{d},{a},{d}]]" if c > a else "[]"},'
             f'"area":{(c - a) * (d - b)},"bbox":[{nums[k]},{nums[k + 1]},{nums[k + 2]},{nums[k + 3]}],"iscrowd":0,',
             _rest(obj, "bbox", im.id, cats[obj["label"]]))
            for (obj, im), a, b, c, d, k in zip(boxes, c0, r0, c1, r1, range(0, len(values), 4), strict=True)]


def box_text(obj: dict[str, Any], w: int, h: int, ann_id: int, image_id: int, category_id: int) -> str:
    """``box_parts`` of one box, with its annotation id."""
    [(head, rest)] = box_parts([(obj, ImageRecord(image_id, "", w, h))], {obj["label"]: category_id})
    return f'{head}"id":{ann_id},{rest}'


def window_rle(mask: npt.NDArray[np.bool_], origin: tuple[int, int], w: int, h: int) -> dict[str, Any]:
    """``rle_encode`` of the ``h`` x ``w`` image that is ``mask`` at ``origin`` (x, y) and
    background elsewhere, from the window alone: each window column padded with a background
    pixel above and below gives its run starts in column-major order."""
    x0, y0 = origin
    mh, mw = mask.shape
    cols = np.zeros((mw, mh + 2), dtype=bool)
    cols[:, 1:-1] = mask.T
    col, row = np.divmod(np.flatnonzero(cols[:, 1:] != cols[:, :-1]), mh + 1)
    starts = (x0 + col) * h + y0 + row
    # A window as tall as the image: a run that ends at a column's last pixel and one that
    # starts at the next column's first are one run.
    same = np.flatnonzero(starts[1:] == starts[:-1])
    if same.size:
        starts = np.delete(starts, np.concatenate((same, same + 1)))
    starts = starts[starts < h * w]
    bounds = np.empty(starts.size + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, h * w
    bounds[1:-1] = starts
    return {"size": [h, w], "counts": counts_to_string(np.diff(bounds))}


def polygon_text(obj: dict[str, Any], traced: Outline, w: int, h: int, ann_id: int, image_id: int,
                 category_id: int, crowd_rle: bool = False) -> str:
    """What ``_dumps`` gives for ``annotation()`` of a polygon without keypoints, from its
    ``Outline``."""
    if traced.rings is None:  # holes: the pixels as RLE
        assert traced.mask is not None
        seg, crowd = _dumps(window_rle(traced.mask, traced.origin, w, h)), int(crowd_rle)
    else:
        seg, crowd = "[" + ",".join(f"[{ring}]" for ring in traced.rings) + "]", 0
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
    traced = trace(g, w, h)
    if traced is None:
        return None
    if traced.exteriors is None:
        (x0, y0), mask = traced.origin, traced.mask
        full = np.zeros((h, w), dtype=bool)
        full[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask
        return {"segmentation": rle_encode(full), "area": traced.area, "bbox": traced.bbox,
                "iscrowd": int(crowd_rle)}
    seg: list[list[float]] = [[float(v) for pt in ext for v in pt] for ext in traced.exteriors]
    return {"segmentation": seg, "area": traced.area, "bbox": traced.bbox, "iscrowd": 0}


def _general(obj: dict[str, Any], im: ImageRecord, ann_id: int, category_id: int, names: list[str],
             crowd_rle: bool) -> str | None:
    """One annotation through ``annotation()`` and ``_dumps`` (bitmaps, keypoints)."""
    ann = annotation(obj, im.width, im.height, crowd_rle)
    if ann is None:
        return None
    ann.update(id=ann_id, image_id=im.id, category_id=category_id,
               labelhub={"id": obj["id"], "type": obj["type"]},
               attributes=obj["attributes"], occluded=obj["occluded"])
    if names:
        by_name = {k["name"]: k for k in obj["keypoints"]}
        flat: list[float] = []
        for n in names:
            k = by_name.get(n)
            flat += [k["x"], k["y"], 2 if k["visible"] else 1] if k else [0, 0, 0]
        ann["keypoints"], ann["num_keypoints"] = flat, len(by_name)
    return _dumps(ann)


def convert(batch: list[ImageRecord], cats: dict[str, int], kp_names: dict[str, list[str]],
            ann_id: int, crowd_rle: bool = False) -> tuple[list[str], list[str], int]:
    """One batch as JSON texts (annotations, images) and the last annotation id used. Boxes and
    polygons without keypoints are written together (``box_parts``, ``outlines``), the others
    one at a time (``_general``)."""
    pairs = [(obj, im) for im in batch for obj in im.objects if obj["type"] in INSTANCE_TYPES]
    for obj, _im in pairs:
        if obj["label"] not in cats:  # a label that appeared while the export ran
            cats[obj["label"]] = len(cats) + 1
    ways = [obj["type"] if obj["type"] != "bitmap" and not kp_names.get(obj["label"]) else "general"
            for obj, _im in pairs]
    boxes = iter(box_parts([p for p, way in zip(pairs, ways, strict=True) if way == "bbox"], cats))
    polygons = [p for p, way in zip(pairs, ways, strict=True) if way == "polygon"]
    traced = iter(outlines([obj["geometry"] for obj, _im in polygons], [(im.width, im.height) for _obj, im in polygons]))
    out: list[str] = []
    for (obj, im), way in zip(pairs, ways, strict=True):
        if way == "bbox":
            ann_id += 1
            head, rest = next(boxes)
            out.append(f'{head}"id":{ann_id},{rest}')
        elif way == "polygon":
            if (shape := next(traced)) is not None:
                ann_id += 1
                out.append(polygon_text(obj, shape, im.width, im.height, ann_id, im.id, cats[obj["label"]], crowd_rle))
        elif (text := _general(obj, im, ann_id + 1, cats[obj["label"]], kp_names.get(obj["label"], []),
                               crowd_rle)) is not None:
            ann_id += 1
            out.append(text)
    images = [_dumps({"id": im.id, "file_name": im.name, "width": im.width, "height": im.height})
              for im in batch]
    return out, images, ann_id


def convert_packed(batch: list[ImageRecord], packed: Packed, cats: dict[str, int],
                   kp_names: dict[str, list[str]], ann_id: int, crowd_rle: bool = False
                   ) -> tuple[bytes, bytes, int, dict[str, int]]:
    """``convert`` of a batch whose objects are still packed, in a worker process: decoded and
    written there, joined and encoded there, so the server process only reads rows and passes
    text on. Gives the annotations' and the images' text (comma-separated, no brackets), the
    last annotation id and ``cats`` with the labels that appeared (a worker's copy of it is not
    the caller's)."""
    with _no_collector():
        out, images, ann_id = convert(decode_objects(batch, packed), cats, kp_names, ann_id, crowd_rle)
        return ",".join(out).encode(), ",".join(images).encode(), ann_id, cats


@contextmanager
def _no_collector() -> Iterator[None]:
    """The cyclic garbage collector paused while a batch is converted: the batch's ~100,000
    fresh containers hold no cycles (refcounts free them), and the collector's passes over
    them took 40% of the conversion (measured: 7.0 s -> 4.2 s CPU for 200,000 objects)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
