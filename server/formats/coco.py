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

import tempfile
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from sqlalchemy import String, cast, select

from server import offload, strict_json
from server.formats._coco_write import INSTANCE_TYPES, _dumps, convert_packed
from server.formats._importing import ImportFileError, Incoming
from server.formats._source import ExportJob, iter_packed, reading
from server.geometry.rle import counts_to_string
from server.models import LabelObjectRow

MEDIA_TYPE = "application/json"
SUFFIX = "json"


_SPOOL_BYTES = 8 << 20
#: Converting a batch costs about this per byte of its packed rows (``server.offload`` units of
#: ~10 ns; measured ~2.5 s for the benchmark's 32 MB): past ~25 KB (150 boxes) it goes to the pool.
CONVERT_COST_PER_BYTE = 8


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


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    """One pass over the images: annotations are streamed, the (much smaller) images list is
    spooled (to disk past a few MB) and written after them, so every image and its annotations
    come from the same read. COCO readers do not care about the order of the top-level keys."""
    cats, kp_names = await _categories(job)
    crowd_rle = job.options.get("crowd_rle") in ("1", "true")
    seq = f',"labelhub_seq":{job.seq}' if job.seq is not None else ""  # the op-log position
    yield f'{{"info":{{"description":"Labelhub export","version":"1.0"{seq}}},"licenses":[],"annotations":['.encode()
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        ann_id, sep = 0, b""
        async for batch, packed in iter_packed(job.sessions, job.project_id, job.flt, labels=False):
            # In the worker pool (another core) while the next batch is read here; waiting for
            # a place when the pool is full: an export under way cannot answer busy.
            out, images, ann_id, found = await offload.run(
                convert_packed, batch, packed, cats, kp_names, ann_id, crowd_rle,
                cost=len(packed.text) * CONVERT_COST_PER_BYTE, wait=True)
            cats.update(found)
            if out:
                yield sep + out
                sep = b","
            spool.write((b"," if spool.tell() else b"") + images)
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
