"""Training a box detector on the images people boxed, and measuring it — pure (numpy and
scikit-learn; the network is passed in, already loaded).

The feature maps of every view of every image are computed once (:func:`image_maps`, kept as
float16; mirrored copies too when asked, :data:`FLIP`). The sample cells of each image
(its positives, and some background) are drawn once; a fit on any subset of images joins
theirs. Quality is measured by cross-validation over images: each fold's detector finds boxes
in the images it did not see, and those boxes give the mAP@0.5 (VOC all-point average
precision per label, averaged over labels), the score threshold (best F1 over every label's
boxes), per-label precision and recall at it, the precision-recall curve and a learning curve.
CPU-heavy: call :func:`train` in a worker thread, never on an event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from server.ai.detection import (
    FEATURE,
    SIZE,
    Box,
    Detected,
    Detector,
    cell_features,
    fit_detector,
    iou,
    nms,
    targets,
    view_boxes,
    views,
)

__all__ = ["FLIP", "MIN_BOXES", "MIN_IMAGES", "Boxed", "ViewMaps", "average_precision",
           "detect_image", "image_maps", "shortfalls", "train"]

MIN_BOXES = 3  # per label: cross-validation needs some in a training and a held-out part
MIN_IMAGES = 4  # boxed images: folds of at least two images
FOLDS = 3
FLIP = False  # mirrored copies: measured no better on the benchmark scenes, at twice the cost
MATCH_IOU = 0.5
EVAL_FLOOR = 0.05  # boxes scoring less are not kept when measuring (nor predicted)
NEG_PER_VIEW = 48  # background cells drawn per view (before the global balance)
BACKGROUND_PER_POSITIVE = 4
LEARNING_FRACTIONS = (0.25, 0.5)
CURVE_POINTS = 50


Rows = Sequence[int] | np.ndarray  # image indices


class Runs(Protocol):
    """What :func:`image_maps` needs of ``server.ai.model.Network``."""

    def run_each(self, images: Sequence[np.ndarray], outputs: Sequence[str],
                 size: int = ...) -> Iterator[list[np.ndarray]]: ...


@dataclass(frozen=True)
class ViewMaps:
    rect: tuple[int, int, int, int]
    map16: np.ndarray  # (C, h, w), float16 when kept for training
    map32: np.ndarray  # (C, h/2, w/2)
    flipped: bool = False

    def cells(self) -> np.ndarray:
        return cell_features(self.map16, self.map32)


@dataclass(frozen=True)
class Boxed:
    """One image as training sees it: its views' maps and its boxes in image pixels."""

    width: int
    height: int
    maps: list[ViewMaps]
    boxes: list[Box]


def image_maps(net: Runs, images: Sequence[np.ndarray], flip: bool = False,
               dtype: type[np.floating[Any]] = np.float16) -> list[list[ViewMaps]]:
    """Every view's maps for each RGB image (also of the image mirrored when ``flip``), as
    ``dtype``: float16 for maps kept a while (training keeps every image's), float32 for maps
    used at once (prediction: each cast took ~0.5 ms of an image's ~25)."""
    crops: list[np.ndarray] = []
    owners: list[tuple[int, tuple[int, int, int, int], bool]] = []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        for rect in views(w, h):
            x, y, rw, rh = rect
            crop = image[y : y + rh, x : x + rw]
            crops.append(crop)
            owners.append((i, rect, False))
            if flip:
                crops.append(np.ascontiguousarray(crop[:, ::-1]))
                owners.append((i, rect, True))
    out: list[list[ViewMaps]] = [[] for _ in images]
    if not crops:
        return out
    views_in_order = iter(owners)
    for map16, map32 in net.run_each(crops, ["map16", "map32"], size=SIZE):
        for m16, m32 in zip(map16, map32, strict=True):
            i, rect, flipped = next(views_in_order)
            out[i].append(ViewMaps(rect, m16.astype(dtype, copy=False),
                                   m32.astype(dtype, copy=False), flipped))
    return out


def shortfalls(counts: Mapping[str, int], images: int) -> list[str]:
    """What the boxed images lack for training a detector, one sentence each (empty: enough).
    ``counts``: boxes per label; ``images``: images with at least one of those boxes."""
    problems: list[str] = []
    if not counts:
        problems.append("training a detector needs boxes (bbox objects people drew); there are none")
    for name, n in sorted(counts.items()):
        if n < MIN_BOXES:
            problems.append(f"label {name!r} has {n} box(es); it needs {MIN_BOXES}")
    if counts and images < MIN_IMAGES:
        problems.append(f"{images} image(s) have boxes; a detector needs {MIN_IMAGES}")
    return problems


def _samples(ex: Boxed, index: Mapping[str, int], rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, regs = [], [], []
    for vm in ex.maps:
        vx, _, vw, _ = vm.rect
        boxes = ex.boxes
        if vm.flipped:  # the box mirrored inside the view
            boxes = [(n, 2 * vx + vw - x - w, y, w, h) for n, x, y, w, h in boxes]
        inside = [(index[n], x, y, w, h) for n, x, y, w, h in view_boxes(boxes, vm.rect)]
        h, w = vm.map16.shape[1:]
        cls, reg = targets(inside, h, w)
        pos = np.flatnonzero(cls > 0)
        neg = np.flatnonzero(cls == 0)
        neg = rng.choice(neg, min(neg.size, NEG_PER_VIEW), replace=False)
        rows = np.concatenate([pos, neg])
        xs.append(vm.cells()[rows])
        ys.append(cls[rows])
        regs.append(reg[rows])
    return np.vstack(xs), np.concatenate(ys), np.vstack(regs)


def _fit(samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], rows: Rows,
         labels: Sequence[str], rng: np.random.Generator) -> Detector:
    x = np.vstack([samples[i][0] for i in rows])
    y = np.concatenate([samples[i][1] for i in rows])
    reg = np.vstack([samples[i][2] for i in rows])
    pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y == 0)
    neg = rng.choice(neg, min(neg.size, BACKGROUND_PER_POSITIVE * max(pos.size, 1)), replace=False)
    keep = np.concatenate([pos, neg])
    return fit_detector(x[keep], y[keep], reg[keep], labels)


def detect_image(detector: Detector, maps: Sequence[ViewMaps], threshold: float | None = None
                 ) -> list[Detected]:
    """The boxes found in one image (its unmirrored views), overlaps across views removed."""
    found: list[Detected] = []
    for vm in maps:
        if not vm.flipped:
            found += detector.detect_maps(vm.map16, vm.map32, vm.rect, threshold)
    return nms(found)


def _matched(found: Sequence[Sequence[Detected]], truth: Sequence[Sequence[Box]]
             ) -> list[tuple[str, float, bool]]:
    """Every found box as (label, score, true positive?): greedy, best score first, per image."""
    out: list[tuple[str, float, bool]] = []
    for boxes, expected in zip(found, truth, strict=True):
        gt = [Detected(n, 1.0, x, y, w, h) for n, x, y, w, h in expected]
        used = [False] * len(gt)
        for d in sorted(boxes, key=lambda d: -d.score):
            best, at = MATCH_IOU, -1
            for k, g in enumerate(gt):
                if not used[k] and g.label == d.label and iou(d, g) >= best:
                    best, at = iou(d, g), k
            if at >= 0:
                used[at] = True
            out.append((d.label, d.score, at >= 0))
    return out


def average_precision(hits: Sequence[tuple[float, bool]], total: int) -> float:
    """VOC all-point AP of scored (score, true positive?) boxes against ``total`` true boxes."""
    if total == 0:
        return 0.0
    order = sorted(hits, key=lambda h: -h[0])
    tp = np.cumsum([h[1] for h in order], dtype=float)
    precision = tp / np.arange(1, len(order) + 1) if order else np.zeros(0)
    recall = tp / total if order else np.zeros(0)
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [recall[-1] if order else 0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def _map(matched: Sequence[tuple[str, float, bool]], counts: Mapping[str, int]) -> dict[str, float]:
    return {name: average_precision([(s, t) for n, s, t in matched if n == name], total)
            for name, total in counts.items() if total > 0}


def _folds(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    order = rng.permutation(n)
    k = min(FOLDS, n // 2)
    parts = np.array_split(order, k)
    return [(np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])), np.sort(parts[i]))
            for i in range(k)]


def _metrics(matched: list[tuple[str, float, bool]], counts: Mapping[str, int],
             ap: Mapping[str, float]) -> tuple[float, dict[str, Any]]:
    total = sum(counts.values())
    order = sorted(matched, key=lambda m: -m[1])
    scores = np.array([m[1] for m in order])
    tp = np.cumsum([m[2] for m in order], dtype=float)
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / max(total, 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall,
                                                                              1e-12), 0.0)
    best = int(np.argmax(f1)) if len(order) else -1
    threshold = float(scores[best]) if best >= 0 else 0.5
    per_label = []
    for name, truth in counts.items():
        mine = [m for m in matched if m[0] == name and m[1] >= threshold]
        hit = sum(m[2] for m in mine)
        per_label.append({"label": name, "examples": truth, "ap": round(ap.get(name, 0.0), 4),
                          "precision": round(hit / len(mine), 4) if mine else None,
                          "recall": round(hit / truth, 4) if truth else None})
    step = max(1, len(order) // CURVE_POINTS)
    curve = [{"threshold": round(float(scores[i]), 4), "precision": round(float(precision[i]), 4),
              "recall": round(float(recall[i]), 4)} for i in range(0, len(order), step)]
    return threshold, {"threshold": round(threshold, 4), "labels": per_label, "pr_curve": curve}


def train(examples: Sequence[Boxed], labels: Sequence[str], seed: int = 0
          ) -> tuple[Detector, dict[str, Any]]:
    """:func:`_train` with BLAS and OpenMP on one thread (small problems on shared cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _train(examples, labels, seed)


def _train(examples: Sequence[Boxed], labels: Sequence[str], seed: int
           ) -> tuple[Detector, dict[str, Any]]:
    """The detector fitted on every image, and its cross-validated metrics."""
    from server.ai.training import TrainingError

    counts = {n: sum(b[0] == n for ex in examples for b in ex.boxes) for n in labels}
    problems = shortfalls({n: c for n, c in counts.items()},
                          sum(1 for ex in examples if ex.boxes))
    if problems:
        raise TrainingError("; ".join(problems))
    rng = np.random.default_rng(seed)
    index = {n: j for j, n in enumerate(labels)}
    samples = [_samples(ex, index, rng) for ex in examples]
    folds = _folds(len(examples), rng)
    matched: list[tuple[str, float, bool]] = []
    for train_rows, test_rows in folds:
        det = _fit(samples, train_rows, labels, rng)
        matched += _matched([detect_image(det, examples[i].maps, EVAL_FLOOR) for i in test_rows],
                            [examples[i].boxes for i in test_rows])
    ap = _map(matched, counts)
    quality = float(np.mean(list(ap.values()))) if ap else 0.0
    threshold, metrics = _metrics(matched, counts, ap)
    curve = []
    for fraction in LEARNING_FRACTIONS:
        values, sizes = [], []
        for train_rows, test_rows in folds[:2]:
            keep = rng.permutation(train_rows)[: max(2, round(fraction * train_rows.size))]
            sub = Counts(examples, keep, labels)
            if not sub.any():
                continue
            det = _fit(samples, keep, labels, rng)
            found = [detect_image(det, examples[i].maps, EVAL_FLOOR) for i in test_rows]
            m = _map(_matched(found, [examples[i].boxes for i in test_rows]),
                     Counts(examples, test_rows, labels).by_label)
            values.append(float(np.mean(list(m.values()))) if m else 0.0)
            sizes.append(keep.size)
        if values:
            curve.append({"images": int(np.mean(sizes)), "quality": round(float(np.mean(values)), 4)})
    curve.append({"images": int(np.mean([f[0].size for f in folds])), "quality": round(quality, 4)})
    metrics.update({
        "map50": round(quality, 4), "quality_measure": "mAP@0.5 (cross-validated)",
        "learning_curve": curve, "folds": len(folds), "images": len(examples),
        "boxes": sum(counts.values()), "feature": FEATURE, "flip": any(
            vm.flipped for ex in examples for vm in ex.maps)})
    detector = _fit(samples, list(range(len(examples))), labels, rng)
    return detector.with_threshold(threshold), metrics


class Counts:
    """Boxes per label among some of the images."""

    def __init__(self, examples: Sequence[Boxed], rows: Rows, labels: Sequence[str]) -> None:
        self.by_label = {n: sum(b[0] == n for i in rows for b in examples[int(i)].boxes)
                         for n in labels}

    def any(self) -> bool:
        return any(self.by_label.values())
