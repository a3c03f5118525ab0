"""Label Studio ``predictions``: read as Labelhub predictions (``server/ai/imported.py`` stores
them) and written back from a project's pending predictions.

A task's prediction ``{"model_version", "score", "result": [...]}`` becomes, per distinct
``model_version``, ``labels`` ``[{"label", "score"}]`` (its ``choices``) and ``objects``
``[{"type": "bbox", "label", "score", "geometry": {x, y, w, h}}]`` in pixels (its unrotated
rectangles). A region's own ``score`` wins over the prediction's; with neither it is 1.0.
Boxes only: polygons, brushes, keypoints and rotated rectangles are counted as skipped (the
review screen and ``/predictions/add`` take boxes), never turned into something else.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.classification import ClassificationError, normalize_label
from server.models import AiModel, AiModelVersion, Prediction

__all__ = ["PredictionError", "export_predictions", "prediction_tasks", "read_predictions"]

#: Percent a box may pass the image's edge by (Label Studio's float noise); it is clipped.
_EDGE = 0.01
_SKIPPED = ("polygonlabels", "brushlabels", "keypointlabels", "polygon", "brush", "keypoint",
            "ellipselabels", "ellipse")


class PredictionError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _score(raw: Any, where: str, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) \
            or not 0 <= raw <= 1:
        raise PredictionError(where, "must be a number from 0 to 1")
    return float(raw)


def _pct(value: dict[str, Any], key: str, where: str) -> float:
    v = value.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise PredictionError(f"{where}.value.{key}", "must be a number")
    return float(v)


def _box(value: dict[str, Any], where: str, w: int, h: int) -> dict[str, float]:
    x, y = _pct(value, "x", where), _pct(value, "y", where)
    bw, bh = _pct(value, "width", where), _pct(value, "height", where)
    if bw <= 0 or bh <= 0:
        raise PredictionError(f"{where}.value", "width and height must be above 0")
    if x < -_EDGE or y < -_EDGE or x + bw > 100 + _EDGE or y + bh > 100 + _EDGE:
        raise PredictionError(f"{where}.value", "the box is outside the image")
    x0, y0 = max(x, 0.0) * w / 100, max(y, 0.0) * h / 100
    x1, y1 = min(x + bw, 100.0) * w / 100, min(y + bh, 100.0) * h / 100
    return {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}


def _name(value: dict[str, Any], key: str, where: str) -> str:
    names = value.get(key, value.get("labels"))
    if not isinstance(names, list) or not names:
        raise PredictionError(f"{where}.value.{key}", "must be a list of label names")
    try:
        return normalize_label(names[0], f"{where}.value.{key}.0")
    except ClassificationError as exc:
        raise PredictionError(exc.field, exc.message) from None


def _one(pred: Any, where: str, w: int, h: int) -> dict[str, Any]:
    if not isinstance(pred, dict):
        raise PredictionError(where, "must be an object")
    version = pred.get("model_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, str | int)):
        raise PredictionError(f"{where}.model_version", "must be a text")
    version = "" if version is None else str(version).strip()
    if len(version) > 180 or any(ord(c) < 32 for c in version):
        raise PredictionError(f"{where}.model_version", "must be at most 180 printable characters")
    score = _score(pred.get("score"), f"{where}.score", 1.0)
    results = pred.get("result")
    if not isinstance(results, list):
        raise PredictionError(f"{where}.result", "must be a list")
    labels: dict[str, float] = {}
    objects: list[dict[str, Any]] = []
    skipped = 0
    for r, res in enumerate(results):
        at = f"{where}.result.{r}"
        if not isinstance(res, dict) or not isinstance(res.get("value"), dict):
            raise PredictionError(at, "must be an object with a value")
        kind, value = str(res.get("type", "")).lower(), res["value"]
        region_score = _score(res.get("score", value.get("score")), f"{at}.score", score)
        if kind in ("rectanglelabels", "rectangle"):
            label = _name(value, "rectanglelabels", at)
            geometry = _box(value, at, w, h)
            if float(value.get("rotation") or 0) % 360 != 0:
                skipped += 1
                continue
            objects.append({"type": "bbox", "label": label, "score": round(region_score, 6),
                            "geometry": geometry})
        elif kind == "choices":
            choices = value.get("choices")
            if not isinstance(choices, list) or not choices:
                raise PredictionError(f"{at}.value.choices", "must be a list of label names")
            for c, raw in enumerate(choices):
                try:
                    name = normalize_label(raw, f"{at}.value.choices.{c}")
                except ClassificationError as exc:
                    raise PredictionError(exc.field, exc.message) from None
                labels[name] = max(labels.get(name, 0.0), round(region_score, 6))
        elif kind in _SKIPPED or (kind.endswith("labels") and kind not in ("textarea",)):
            skipped += 1
        # other results (textarea, number, rating...) are a person's fields: not predictions
    return {"model_version": version, "labels": labels, "objects": objects, "skipped": skipped}


def read_predictions(task: dict[str, Any], size: tuple[int, int]) -> list[dict[str, Any]]:
    """The task's predictions, merged per ``model_version``: ``[{"model_version", "labels":
    [{"label", "score"}], "objects", "skipped"}]``. ``PredictionError`` names the bad field."""
    raw = task.get("predictions")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PredictionError("predictions", "must be a list")
    merged: dict[str, dict[str, Any]] = {}
    for p, pred in enumerate(raw):
        one = _one(pred, f"predictions.{p}", *size)
        into = merged.setdefault(one["model_version"], {
            "model_version": one["model_version"], "labels": {}, "objects": [], "skipped": 0})
        for name, score in one["labels"].items():
            into["labels"][name] = max(into["labels"].get(name, 0.0), score)
        into["objects"] += one["objects"]
        into["skipped"] += one["skipped"]
    for m in merged.values():
        m["labels"] = [{"label": n, "score": s}
                       for n, s in sorted(m["labels"].items(), key=lambda kv: (-kv[1], kv[0]))]
    return list(merged.values())


async def export_predictions(session: AsyncSession, image_ids: list[int]
                             ) -> dict[int, list[tuple[str, Prediction]]]:
    """Each image's pending predictions with the ``model_version`` to write: an imported
    model's own (so LS -> Labelhub -> LS keeps it), else ``"<model name> v<version>"``. The
    built-in model's are left out: they name ImageNet classes, not the project's labels."""
    out: dict[int, list[tuple[str, Prediction]]] = {}
    if not image_ids:
        return out
    rows = await session.execute(
        select(Prediction, AiModel.name, AiModel.kind, AiModelVersion.head)
        .join(AiModel, AiModel.id == Prediction.model_id)
        .outerjoin(AiModelVersion, (AiModelVersion.model_id == Prediction.model_id)
                   & (AiModelVersion.version == Prediction.version))
        .where(Prediction.image_id.in_(image_ids), Prediction.status == "pending",
               AiModel.kind != "builtin")
        .order_by(Prediction.image_id, Prediction.id))
    for pred, name, kind, head in rows:
        if kind == "imported" and head is not None and "model_version" in head:
            version = str(head["model_version"])
        else:
            version = f"{name} v{pred.version}"
        out.setdefault(pred.image_id, []).append((version, pred))
    return out


def prediction_tasks(preds: list[tuple[str, Prediction]], w: int, h: int) -> list[dict[str, Any]]:
    """Label Studio ``predictions`` of one image."""
    out = []
    for version, p in preds:
        results: list[dict[str, Any]] = []
        scores: list[float] = []
        for k, o in enumerate(p.objects or []):
            g = o.get("geometry") or {}
            if o.get("type", "bbox") != "bbox":
                continue
            score = float(o.get("score", 1.0))
            scores.append(score)
            results.append({"id": f"p{p.id}_{k + 1}", "type": "rectanglelabels", "from_name": "label",
                            "to_name": "image", "original_width": w, "original_height": h,
                            "image_rotation": 0, "score": score, "value": {
                                "x": g["x"] * 100 / w, "y": g["y"] * 100 / h, "width": g["w"] * 100 / w,
                                "height": g["h"] * 100 / h, "rotation": 0,
                                "rectanglelabels": [o["label"]]}})
        for k, lab in enumerate(p.labels or []):
            score = float(lab.get("score", 1.0))
            scores.append(score)
            results.append({"id": f"p{p.id}_c{k + 1}", "type": "choices", "from_name": "choice",
                            "to_name": "image", "score": score,
                            "value": {"choices": [lab["label"]]}})
        out.append({"id": p.id, "model_version": version,
                    "score": max(scores) if scores else None, "result": results})
    return out
