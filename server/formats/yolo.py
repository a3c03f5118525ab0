"""YOLO (ultralytics layout) as a ZIP: ``data.yaml``, ``labels/train/<image stem>.txt``,
``train.txt`` listing the image paths (images themselves are not included).

``?task=detect`` (default): one ``class cx cy w h`` line per box, polygon or bitmap (its extent),
normalized to 0..1. ``?task=segment``: one ``class x1 y1 x2 y2 ...`` line per polygon part
(vertices as drawn), per box (its corners) and per bitmap component (its exact pixel outline).
Classes are the object labels in name order (``names`` in ``data.yaml``). Points, polylines and
rpy objects are left out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from server.formats._outline import crop, outline
from server.formats._source import ExportJob, ImageRecord, iter_images, object_labels
from server.formats._zip import Spool, ZipStream, names_rows, suffix, unique_stems
from server.geometry.rle import rle_bbox, rle_decode

MEDIA_TYPE = "application/zip"
SUFFIX = "zip"


def data_yaml(names: list[str]) -> str:
    # No ``path:`` key: ultralytics then takes the folder of data.yaml as the dataset root (a
    # relative ``path`` would be resolved against the working directory or its datasets_dir).
    # Names are JSON strings, which are valid YAML double-quoted scalars.
    lines = ["train: train.txt", "val: train.txt", f"nc: {len(names)}", "names:"]
    lines += [f"  {i}: {json.dumps(n, ensure_ascii=False)}" for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


def _f(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


def _extent(obj: dict[str, Any]) -> tuple[float, float, float, float] | None:
    g = obj["geometry"]
    if obj["type"] == "bbox":
        return g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]
    if obj["type"] == "polygon":
        pts = np.concatenate([np.asarray(p["exterior"], dtype=np.float64).reshape(-1, 2) for p in g["parts"]])
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())
    if obj["type"] == "bitmap":
        x, y, w, h = rle_bbox(g["rle"])
        return (x, y, x + w, y + h) if w and h else None
    return None


def lines_for(obj: dict[str, Any], cls: int, w: int, h: int, task: str) -> list[str]:
    if task == "detect":
        ext = _extent(obj)
        if ext is None:
            return []
        x0, y0, x1, y1 = max(ext[0], 0), max(ext[1], 0), min(ext[2], w), min(ext[3], h)
        if x1 <= x0 or y1 <= y0:
            return []
        return [f"{cls} {_f((x0 + x1) / 2 / w)} {_f((y0 + y1) / 2 / h)} {_f((x1 - x0) / w)} {_f((y1 - y0) / h)}"]
    g = obj["geometry"]
    rings: list[list[list[float]]] = []
    if obj["type"] == "bbox":
        x0, y0, x1, y1 = g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]
        rings = [[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]]
    elif obj["type"] == "polygon":
        rings = [p["exterior"] for p in g["parts"]]
    elif obj["type"] == "bitmap":
        small, off = crop(rle_decode(g["rle"]))
        rings = [[[float(x), float(y)] for x, y in ext] for ext, _holes in outline(small, off)]
    return [f"{cls} " + " ".join(f"{_f(x / w)} {_f(y / h)}" for x, y in ring) for ring in rings if len(ring) >= 3]


def _write_batch(z: ZipStream, batch: list[ImageRecord], stems: list[str], classes: dict[str, int],
                 task: str) -> str:
    """Add the batch's label files to the ZIP (in a worker thread); returns its train.txt lines."""
    listing = []
    for im, st in zip(batch, stems, strict=True):
        lines = []
        for obj in im.objects:
            if obj["label"] not in classes:  # a label that appeared while the export ran
                classes[obj["label"]] = len(classes)
            lines += lines_for(obj, classes[obj["label"]], im.width, im.height, task)
        z.add(f"labels/train/{st}.txt", "\n".join(lines) + ("\n" if lines else ""))
        listing.append(f"./images/train/{st}.{suffix(im.name)}\n")
    return "".join(listing)


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    task = job.options.get("task", "detect")
    classes = {n: i for i, n in enumerate(await object_labels(job.sessions, job.project_id))}
    z = ZipStream()
    seen: dict[str, int] = {}
    listing, names = Spool(), Spool()
    names.write("stem,image\n")
    try:
        async for batch in iter_images(job.sessions, job.project_id, job.flt, labels=False):
            stems = unique_stems([im.name for im in batch], seen)
            listing.write(await asyncio.to_thread(_write_batch, z, batch, stems, classes, task))
            names.write(names_rows(stems, [im.name for im in batch]))
            yield z.drain()
        for chunk in z.add_chunks("train.txt", listing.chunks()):
            yield chunk
        for chunk in z.add_chunks("names.csv", names.chunks()):
            yield chunk
    finally:
        listing.close()
        names.close()
    # Last, so that it names every class used (a ZIP's member order does not matter).
    z.add("data.yaml", data_yaml(list(classes)))
    yield z.close()
