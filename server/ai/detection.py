"""A box detector trained on a project's own boxes over the frozen network's feature maps — pure.

The prototype of docs/ai.md's notes (not wired to routes or jobs yet). Each image is resized to
``SIZE`` x ``SIZE``; every cell of the network's stride-16 map (plus the stride-32 map,
upsampled) is a sample: a multinomial logistic regression says "which label, or background",
and a ridge regression gives the box (centre offset from the cell, log width and height in
cells) for cells that are not background. Prediction keeps the cells that are a local peak of
a label's score, decodes their boxes and removes overlaps (non-maximum suppression).

A cell is an example of a box when its centre lies in the box's central part (``CENTRE``) —
a few cells per object, so small data sets still have positives. CPU-heavy: run it off the
event loop. scikit-learn fits the regressions (as in server/ai/training.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SIZE", "STRIDE", "Detected", "Detector", "cell_features", "iou", "nms", "train_detector"]

SIZE = 320  # network input for detection: objects of ~48-120 px at this size suit stride 16
STRIDE = 16
CENTRE = 0.25  # a cell is positive when its centre is within this share of the box from its centre
BACKGROUND_PER_POSITIVE = 4  # background cells kept per positive one when training
C = 1.0


@dataclass(frozen=True)
class Detected:
    """A box in the image's own pixels: ``x, y`` its top-left corner."""

    label: str
    score: float
    x: float
    y: float
    w: float
    h: float


def cell_features(map16: np.ndarray, map32: np.ndarray) -> np.ndarray:
    """``(H * W, C16 + C32)`` per-cell vectors of one image's maps (``(C, H, W)``, ``(C, H/2,
    W/2)``), each half L2-normalised."""
    c16, h, w = map16.shape
    up = np.repeat(np.repeat(map32, 2, axis=1), 2, axis=2)[:, :h, :w]
    a = map16.reshape(c16, -1).T
    b = up.reshape(up.shape[0], -1).T
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-6)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-6)
    return np.hstack([a, b]).astype(np.float32)


def _targets(boxes: Sequence[tuple[int, float, float, float, float]], h: int, w: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per cell the class (0: background, else label index + 1) and the box regression target,
    for boxes ``(label index, x, y, w, h)`` in network-input pixels."""
    cls = np.zeros(h * w, np.int64)
    reg = np.zeros((h * w, 4), np.float32)
    best = np.full(h * w, np.inf)
    cy, cx = np.mgrid[0:h, 0:w]
    centres_x = ((cx + 0.5) * STRIDE).ravel()
    centres_y = ((cy + 0.5) * STRIDE).ravel()
    for j, x, y, bw, bh in boxes:
        mx, my = x + bw / 2, y + bh / 2
        dx, dy = (centres_x - mx) / max(bw, 1.0), (centres_y - my) / max(bh, 1.0)
        near = (np.abs(dx) <= CENTRE) & (np.abs(dy) <= CENTRE)
        near[int(np.argmin(dx**2 + dy**2))] = True  # the nearest cell, however small the box
        dist = dx**2 + dy**2
        take = near & (dist < best)  # overlapping boxes: the cell goes to the nearest centre
        best[take] = dist[take]
        cls[take] = j + 1
        reg[take] = np.stack([(mx - centres_x[take]) / STRIDE, (my - centres_y[take]) / STRIDE,
                              np.full(take.sum(), np.log(max(bw, 1.0) / STRIDE)),
                              np.full(take.sum(), np.log(max(bh, 1.0) / STRIDE))], axis=1)
    return cls, reg


def iou(a: Detected, b: Detected) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def nms(found: list[Detected], overlap: float = 0.45) -> list[Detected]:
    """Best first; a box overlapping a kept one of its label by more than ``overlap`` goes."""
    kept: list[Detected] = []
    for d in sorted(found, key=lambda d: -d.score):
        if all(k.label != d.label or iou(k, d) <= overlap for k in kept):
            kept.append(d)
    return kept


@dataclass(frozen=True)
class Detector:
    labels: tuple[str, ...]
    coef: np.ndarray  # (labels + 1, dim): background first
    intercept: np.ndarray
    reg_coef: np.ndarray  # (4, dim)
    reg_intercept: np.ndarray  # (4,)

    def detect(self, cells: np.ndarray, h: int, w: int, image_w: int, image_h: int,
               threshold: float = 0.5) -> list[Detected]:
        """Boxes in one image from its :func:`cell_features` (maps of ``h`` x ``w`` cells)."""
        z = cells @ self.coef.T + self.intercept
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        reg = cells @ self.reg_coef.T + self.reg_intercept
        sx, sy = image_w / (w * STRIDE), image_h / (h * STRIDE)
        found: list[Detected] = []
        for j, name in enumerate(self.labels):
            score = p[:, j + 1].reshape(h, w)
            padded = np.pad(score, 1, constant_values=-1.0)
            peak = np.max([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)],
                          axis=0)
            for cy, cx in zip(*np.nonzero((score >= threshold) & (score >= peak)), strict=True):
                r = reg[cy * w + cx]
                mx, my = (cx + 0.5 + r[0]) * STRIDE, (cy + 0.5 + r[1]) * STRIDE
                bw, bh = np.exp(np.clip(r[2:], -3, 5)) * STRIDE
                found.append(Detected(name, float(score[cy, cx]), float((mx - bw / 2) * sx),
                                      float((my - bh / 2) * sy), float(bw * sx), float(bh * sy)))
        return nms(found)


def train_detector(cells: Sequence[np.ndarray], shapes: Sequence[tuple[int, int]],
                   boxes: Sequence[Sequence[tuple[str, float, float, float, float]]],
                   labels: Sequence[str], seed: int = 0) -> Detector:
    """Fit on images given as their :func:`cell_features` (maps of ``shapes[i]`` = ``(h, w)``
    cells) and their boxes ``(label, x, y, w, h)`` in network-input pixels."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from threadpoolctl import threadpool_limits

    index = {n: j for j, n in enumerate(labels)}
    xs, cls, regs = [], [], []
    for c, (h, w), bs in zip(cells, shapes, boxes, strict=True):
        k, r = _targets([(index[n], x, y, bw, bh) for n, x, y, bw, bh in bs], h, w)
        xs.append(c)
        cls.append(k)
        regs.append(r)
    x, y, reg = np.vstack(xs), np.concatenate(cls), np.vstack(regs)
    pos = np.flatnonzero(y > 0)
    if pos.size == 0:
        raise ValueError("no boxes to learn from")
    neg = np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    neg = rng.choice(neg, min(neg.size, BACKGROUND_PER_POSITIVE * pos.size), replace=False)
    rows = np.concatenate([pos, neg])
    with threadpool_limits(1):
        clf = LogisticRegression(C=C, max_iter=500, tol=1e-3).fit(x[rows], y[rows])
        ridge = Ridge(alpha=1.0).fit(x[pos], reg[pos])
    coef = np.zeros((len(labels) + 1, x.shape[1]), np.float32)
    intercept = np.full(len(labels) + 1, -30.0, np.float32)
    classes = clf.classes_.astype(int)
    if classes.size == 2:
        coef[classes[1]], intercept[classes[1]] = clf.coef_[0], clf.intercept_[0]
        coef[classes[0]], intercept[classes[0]] = 0.0, 0.0
    else:
        coef[classes], intercept[classes] = clf.coef_, clf.intercept_
    return Detector(tuple(labels), coef, intercept, ridge.coef_.astype(np.float32),
                    ridge.intercept_.astype(np.float32))
