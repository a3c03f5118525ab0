"""YOLO (ultralytics layout) as a ZIP: ``data.yaml``, ``labels/train/<image stem>.txt``,
``train.txt`` listing the image paths (images themselves are not included).

``?task=detect`` (default): one ``class cx cy w h`` line per box, polygon or bitmap (its extent),
normalized to 0..1. ``?task=segment``: one ``class x1 y1 x2 y2 ...`` line per polygon part
(vertices as drawn), per box (its corners) and per bitmap component (its exact pixel outline).
Classes are the object labels in name order (``names`` in ``data.yaml``). Points, polylines and
rpy objects are left out.

Import (``format=yolo``): the same ZIP (or any ultralytics/darknet layout: ``data.yaml`` or
``classes.txt`` for the names, ``labels/<split>/<path>.txt``); 5-value lines are boxes, longer
ones polygons. One record per label file (an empty file: no objects).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import yaml

from server.formats._images import layout_export
from server.formats._importing import ImportFileError, Incoming
from server.formats._names import NameIndex
from server.formats._outline import crop, outline
from server.formats._reading import open_zip, read_member
from server.formats._source import ExportJob, ImageRecord, object_labels
from server.formats._zip import ZipStream, suffix
from server.formats.table import unguard_cell
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
    async for chunk in layout_export(
            z, job, lambda batch, stems: _write_batch(z, batch, stems, classes, task),
            "train.txt", lambda st, name: f"images/train/{st}.{suffix(name)}"):
        yield chunk
    # Last, so that it names every class used (a ZIP's member order does not matter).
    z.add("data.yaml", data_yaml(list(classes)))
    yield z.close()


# --- import ----------------------------------------------------------------------------------

_LISTS = {"train.txt", "val.txt", "test.txt", "classes.txt", "obj.names", "names.csv"}
_TOLERANCE = 1e-6  # normalized coordinates are written with 6 decimals
_MAX_YAML_BYTES = 1 << 20


def _class_names(archive: zipfile.ZipFile) -> dict[int, str]:
    """Class names from ``data.yaml`` (``names`` as a list or a mapping) or ``classes.txt`` /
    ``obj.names`` (one a line); none: the class ids themselves are the labels."""
    files = {p.rsplit("/", 1)[-1]: p for p in archive.namelist()}
    for key in ("data.yaml", "dataset.yaml"):
        if key in files:
            if archive.getinfo(files[key]).file_size > _MAX_YAML_BYTES:
                raise ImportFileError(f"{key}: larger than {_MAX_YAML_BYTES} bytes")
            try:
                data = yaml.safe_load(read_member(archive, files[key]).decode("utf-8-sig"))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise ImportFileError(f"{key}: not readable YAML ({exc})") from None
            names = data.get("names") if isinstance(data, dict) else None
            # Scalars only: YAML aliases can nest a small file into a huge structure.
            values = names.values() if isinstance(names, dict) else names if isinstance(names, list) else []
            if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
                raise ImportFileError(f"{key}: each class name must be a text")
            if isinstance(names, list):
                return {i: str(n) for i, n in enumerate(names)}
            if isinstance(names, dict) and all(isinstance(k, int) for k in names):
                return {int(k): str(v) for k, v in names.items()}
            raise ImportFileError(f"{key}: names must be a list or a mapping of class ids to names")
    for key in ("classes.txt", "obj.names"):
        if key in files:
            lines = read_member(archive, files[key]).decode("utf-8-sig").splitlines()
            return {i: n.strip() for i, n in enumerate(lines) if n.strip()}
    return {}


def _image_refs(archive: zipfile.ZipFile) -> dict[str, str]:
    """Label file path -> image reference, from ``names.csv`` (this exporter's map) and the
    image lists (``images/<split>/x.jpg`` -> ``labels/<split>/x.txt``, as ultralytics does)."""
    out: dict[str, str] = {}
    for path in archive.namelist():
        base = path.rsplit("/", 1)[-1]
        if base in ("train.txt", "val.txt", "test.txt"):
            root = path[: -len(base)]
            for line in read_member(archive, path).decode("utf-8-sig").splitlines():
                ref = line.strip().removeprefix("./")
                if "images/" in f"/{ref}":
                    head, _, tail = f"/{ref}".rpartition("/images/")
                    label = f"{root}{head.lstrip('/')}{'/' if head.strip('/') else ''}labels/{tail}"
                    out[label.rsplit(".", 1)[0] + ".txt"] = tail.split("/", 1)[-1]
    return out


def _label_stem(path: str) -> str:
    """``labels/train/cat/001.txt`` -> ``cat/001`` (the split folder dropped)."""
    rest = path.removesuffix(".txt")
    if "labels/" in f"/{rest}":
        rest = f"/{rest}".rpartition("/labels/")[2]
        first, _, after = rest.partition("/")
        rest = after if after and first in ("train", "val", "valid", "test") else rest
    return rest


def _shape(values: list[float], w: int, h: int) -> tuple[str, dict[str, Any]]:
    if any(not -_TOLERANCE <= v <= 1 + _TOLERANCE for v in values):
        raise ValueError("coordinates outside the image (YOLO's are normalized to 0..1)")
    if len(values) == 4:
        cx, cy, bw, bh = values
        return "bbox", {"x": (cx - bw / 2) * w, "y": (cy - bh / 2) * h, "w": bw * w, "h": bh * h}
    if len(values) >= 6 and len(values) % 2 == 0:
        ring = [[values[i] * w, values[i + 1] * h] for i in range(0, len(values), 2)]
        return "polygon", {"parts": [{"exterior": ring}]}
    raise ValueError("a line is 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...'")


def parse(body: bytes, index: NameIndex) -> list[Incoming]:
    """A ZIP in the ultralytics layout (``data.yaml``, ``labels/<split>/*.txt``, boxes or
    segments): one record per label file, its objects replacing the image's."""
    archive = open_zip(body, "a ZIP of YOLO label files")
    classes = _class_names(archive)
    refs = _image_refs(archive)
    stems: dict[str, str] = {}
    if "names.csv" in archive.namelist():
        rows = csv.DictReader(io.StringIO(read_member(archive, "names.csv").decode("utf-8-sig")))
        stems = {unguard_cell(r.get("stem") or ""): unguard_cell(r.get("image") or "") for r in rows}
    paths = sorted(p for p in archive.namelist() if p.endswith(".txt")
                   and p.rsplit("/", 1)[-1] not in _LISTS and not p.endswith("/"))
    if not paths:
        raise ImportFileError("the ZIP holds no YOLO label files (labels/<split>/<image>.txt)")
    out: list[Incoming] = []
    for row, path in enumerate(paths, start=1):
        st = _label_stem(path)
        if st in stems:
            name, size = index.resolve(stems[st])
        elif path in refs:
            name, size = index.resolve(refs[path])
        else:
            name, size = index.resolve(st, stem=True)
        rec = Incoming(row, name, objects=[], has_objects=True)
        out.append(rec)
        if size is None:
            continue  # no such image: run_import refuses the row by name
        try:
            text = read_member(archive, path).decode("utf-8-sig")
        except UnicodeDecodeError:
            rec.error = (path, "not UTF-8 text")
            continue
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                fields = line.split()
                cls = int(fields[0])
                if classes and cls not in classes:
                    raise ValueError(f"class {cls} is not in the class names")
                kind, geometry = _shape([float(v) for v in fields[1:]], *size)
            except ValueError as exc:
                rec.error = (f"{path}:{n}", str(exc))
                break
            rec.objects.append({"id": f"yolo-{n}", "type": kind, "label": classes.get(cls, str(cls)),
                                "geometry": geometry})
    return out
