"""Label Studio JSON (its "JSON" export: a list of tasks with annotations and predictions).

Export: one task per image, ``data.image`` its name (``?image_url=`` puts a prefix before it,
e.g. ``/data/local-files/?d=`` or ``s3://bucket/``), one annotation whose regions are the
image's objects in Label Studio's percent coordinates (``x * 100 / width``):

* ``bbox`` -> ``rectanglelabels``; ``polygon`` -> ``polygonlabels`` (one region per part, holes
  dropped); ``bitmap`` -> ``brushlabels`` in Label Studio's own RLE; ``point`` ->
  ``keypointlabels``; classification labels -> one ``choices`` result (the default first);
* each attribute -> a ``textarea`` result sharing the region's id (Label Studio's per-region
  fields); polylines, rpy objects, object keypoints, ``occluded`` and ``z`` have no place.

Import reads the same and Label Studio's own exports: the last annotation not cancelled of each
task (or the file's ``completions``; a task without one leaves its image alone), rotated rectangles as polygons, per-region ``textarea`` /
``choices`` / ``number`` / ``rating`` results as attributes, other ``choices`` as the image's
labels (the first one the default). Images are matched by file name (``server/formats/_names.py``).

Predictions (``server/formats/_ls_predictions.py``): a task's ``predictions`` are read into
``Incoming.predictions`` and stored as pending predictions of imported models
(``server/ai/imported.py``) in the import's transaction; an export writes each image's pending
predictions back.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

from server import strict_json
from server.formats import _ls_predictions, _ls_rle
from server.formats._importing import ImportFileError, Incoming
from server.formats._names import NameIndex
from server.formats._source import ExportJob, ImageRecord, iter_images, reading
from server.geometry.rle import rle_decode, rle_encode

MEDIA_TYPE = "application/json"
SUFFIX = "json"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
#: Label Studio's control tag names in the exported results (see docs/formats.md's config).
FROM_NAMES = {"rectanglelabels": "label", "polygonlabels": "polygon", "brushlabels": "brush",
              "keypointlabels": "keypoint", "choices": "choice"}
_REGION_TYPES = ("rectanglelabels", "polygonlabels", "brushlabels", "keypointlabels",
                 "rectangle", "polygon", "brush", "keypoint")
_FIELD_TYPES = ("textarea", "choices", "number", "rating", "taxonomy")


def _region(obj: dict[str, Any], kind: str, value: dict[str, Any], w: int, h: int,
            rid: str | None = None) -> dict[str, Any]:
    return {"id": rid or obj["id"], "type": kind, "from_name": FROM_NAMES[kind], "to_name": "image",
            "original_width": w, "original_height": h, "image_rotation": 0,
            "value": {**value, kind: [obj["label"]]}}


def results_for(img: ImageRecord) -> list[dict[str, Any]]:
    """The image's objects and labels as Label Studio results."""
    w, h = img.width, img.height
    out: list[dict[str, Any]] = []
    for obj in img.objects:
        g, kind = obj["geometry"], obj["type"]
        if kind == "bbox":
            out.append(_region(obj, "rectanglelabels", {
                "x": g["x"] * 100 / w, "y": g["y"] * 100 / h, "width": g["w"] * 100 / w,
                "height": g["h"] * 100 / h, "rotation": 0}, w, h))
        elif kind == "polygon":
            for k, part in enumerate(g["parts"]):
                points = [[x * 100 / w, y * 100 / h] for x, y in part["exterior"]]
                out.append(_region(obj, "polygonlabels", {"points": points, "closed": True}, w, h,
                                   obj["id"] if k == 0 else f"{obj['id']}_{k + 1}"))
        elif kind == "bitmap":
            rle = _ls_rle.encode(rle_decode(g["rle"]))
            out.append(_region(obj, "brushlabels", {"format": "rle", "rle": rle}, w, h))
        elif kind == "point":
            out.append(_region(obj, "keypointlabels", {"x": g["x"] * 100 / w, "y": g["y"] * 100 / h,
                                                        "width": 0.5}, w, h))
        else:
            continue
        for name, value in obj["attributes"].items():
            out.append({"id": obj["id"], "type": "textarea", "from_name": str(name), "to_name": "image",
                        "value": {"text": [value if isinstance(value, str) else _dumps(value)]}})
    if img.labels:
        labels = sorted(img.labels, key=lambda s: not s.is_default)
        out.append({"id": "choices", "type": "choices", "from_name": "choice", "to_name": "image",
                    "value": {"choices": [s.label for s in labels]}})
    return out


def _tasks(batch: list[ImageRecord], prefix: str, preds: dict[int, list[Any]]) -> list[str]:
    return [_dumps({"id": img.id, "data": {"image": prefix + img.name},
                    "annotations": [{"id": img.id, "result": results_for(img), "was_cancelled": False,
                                     "ground_truth": False}],
                    "predictions": _ls_predictions.prediction_tasks(preds.get(img.id, []), img.width,
                                                                    img.height),
                    "meta": {"labelhub_image": img.name}}) for img in batch]


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    prefix = job.options.get("image_url", "")
    yield b"["
    sep = "\n"
    async for batch in iter_images(job.sessions, job.project_id, job.flt):
        async with reading(job.sessions) as session:  # the same snapshot as the images
            preds = await _ls_predictions.export_predictions(session, [img.id for img in batch])
        texts = await asyncio.to_thread(_tasks, batch, prefix, preds)  # brush RLE: off the event loop
        if texts:
            yield (sep + ",\n".join(texts)).encode()
            sep = ",\n"
    yield b"\n]\n"


# --- import ----------------------------------------------------------------------------------


def _num(value: dict[str, Any], key: str) -> float:
    v = value.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"value.{key} must be a number")
    return float(v)


def _label(value: dict[str, Any], kind: str) -> str:
    names = value.get(kind, value.get("labels"))
    if not isinstance(names, list) or not names or not isinstance(names[0], str):
        raise ValueError(f"value.{kind} must be a list of label names")
    return names[0]


def _object(res: dict[str, Any], w: int, h: int) -> dict[str, Any]:
    """One region as a Labelhub object (percentages of the image's size -> pixels)."""
    kind, value = str(res.get("type", "")).lower(), res.get("value")
    if not isinstance(value, dict):
        raise ValueError("value must be an object")
    base = kind.removesuffix("labels")
    label = _label(value, kind if kind.endswith("labels") else "labels")
    obj: dict[str, Any] = {"id": str(res.get("id") or ""), "label": label}
    if base == "rectangle":
        x, y = _num(value, "x") * w / 100, _num(value, "y") * h / 100
        bw, bh = _num(value, "width") * w / 100, _num(value, "height") * h / 100
        angle = float(value.get("rotation") or 0)
        if angle % 360 == 0:
            obj.update(type="bbox", geometry={"x": x, "y": y, "w": bw, "h": bh})
        else:  # Label Studio turns a rectangle about its top-left corner, in pixels
            c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            ring = [[x + dx * c - dy * s, y + dx * s + dy * c] for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
            obj.update(type="polygon", geometry={"parts": [{"exterior": ring}]})
    elif base == "polygon":
        points = value.get("points")
        if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
            raise ValueError("value.points must be a list of [x, y] percentages")
        ring = [[_num({"v": p[0]}, "v") * w / 100, _num({"v": p[1]}, "v") * h / 100] for p in points]
        obj.update(type="polygon", geometry={"parts": [{"exterior": ring}]})
    elif base == "brush":
        if value.get("format", "rle") != "rle":
            raise ValueError("only brush regions in the rle format can be read")
        obj.update(type="bitmap", geometry={"rle": rle_encode(_ls_rle.decode(value.get("rle"), w, h))})  # type: ignore[arg-type]
    elif base == "keypoint":
        obj.update(type="point", geometry={"x": _num(value, "x") * w / 100, "y": _num(value, "y") * h / 100})
    else:
        raise ValueError(f"{kind} results are not read")
    return obj


def _field_value(value: dict[str, Any]) -> Any:
    for key in ("text", "choices", "number", "rating", "taxonomy"):
        if key in value:
            v = value[key]
            if key in ("text", "choices") and isinstance(v, list) and len(v) == 1:
                v = v[0]
            if isinstance(v, str) and v[:1] in "[{0123456789-tfn\"":
                try:  # an attribute this exporter wrote as JSON (numbers, lists, booleans)
                    return json.loads(v)
                except ValueError:
                    return v
            return v
    return None


def _annotation(task: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The task's annotation to import: the last one not cancelled."""
    annotations = task.get("annotations", task.get("completions")) or []
    if not isinstance(annotations, list):
        raise ValueError("annotations must be a list")
    for i in range(len(annotations) - 1, -1, -1):
        a = annotations[i]
        if isinstance(a, dict) and not a.get("was_cancelled"):
            return i, a
    return None


def _image_ref(task: dict[str, Any]) -> str | None:
    data = task.get("data")
    if not isinstance(data, dict):
        return None
    ref = data.get("image", next((v for v in data.values() if isinstance(v, str)), None))
    return ref if isinstance(ref, str) else None


def _read_task(rec: Incoming, task: dict[str, Any], size: tuple[int, int]) -> None:
    try:
        rec.predictions = _ls_predictions.read_predictions(task, size) or None
    except _ls_predictions.PredictionError as exc:
        raise _RowError(exc.field, exc.message) from None
    picked = _annotation(task)
    if picked is None:  # not annotated in Label Studio: the image is left as it is
        rec.has_objects = False
        return
    a, ann = picked
    results = ann.get("result")
    if not isinstance(results, list):
        raise _RowError(f"annotations.{a}.result", "must be a list")
    w, h = size
    objects: dict[str, dict[str, Any]] = {}
    fields: list[tuple[int, dict[str, Any]]] = []
    for r, res in enumerate(results):
        where = f"annotations.{a}.result.{r}"
        if not isinstance(res, dict):
            raise _RowError(where, "must be an object")
        kind = str(res.get("type", "")).lower()
        if kind in _REGION_TYPES:
            try:
                obj = _object(res, w, h)
            except ValueError as exc:
                raise _RowError(where, str(exc)) from None
            rid = obj["id"] or f"ls-{r + 1}"
            while rid in objects:  # polygon parts exported as separate regions keep their ids apart
                rid += "_"
            obj["id"] = rid
            objects[rid] = obj
        elif kind in _FIELD_TYPES:
            fields.append((r, res))
    labels: list[str] = []
    for r, res in fields:
        raw = res.get("value")
        value: dict[str, Any] = raw if isinstance(raw, dict) else {}
        target = objects.get(str(res.get("id")))
        if target is not None:
            target.setdefault("attributes", {})[str(res.get("from_name") or "value")] = _field_value(value)
        elif str(res.get("type")).lower() == "choices":
            choices = value.get("choices")
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise _RowError(f"annotations.{a}.result.{r}.value.choices", "must be a list of names")
            labels += [c for c in choices if c not in labels]
    rec.objects = list(objects.values())
    if labels:
        rec.labels, rec.has_labels = labels, True


class _RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def parse(body: bytes, index: NameIndex) -> list[Incoming]:
    try:
        data = strict_json.loads(body)
    except strict_json.JsonInputError as exc:
        raise ImportFileError(exc.message) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ImportFileError("a Label Studio export is a list of tasks")
    out: list[Incoming] = []
    for row, task in enumerate(data, start=1):
        ref = _image_ref(task) if isinstance(task, dict) else None
        if ref is None:
            out.append(Incoming(row, "", error=(f"tasks.{row - 1}.data.image", "a task needs data.image")))
            continue
        name, size = index.resolve(ref)
        rec = Incoming(row, name, objects=[], has_objects=True)
        out.append(rec)
        if size is None:
            continue  # no such image: run_import refuses the row by name
        try:
            _read_task(rec, task, size)
        except _RowError as exc:
            rec.error = (exc.field, exc.message)
        except ValueError as exc:
            rec.error = ("annotations", str(exc))
    return out
