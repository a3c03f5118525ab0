"""A box detector trained on a project's own boxes over the frozen network's feature maps — pure.

Each *view* of an image (the whole image, plus overlapping tiles for large ones: :func:`views`)
is resized to ``SIZE`` x ``SIZE``; every cell of the network's stride-16 map (plus the stride-32
map, upsampled) is a sample: a multinomial logistic regression says "which label, or
background", and a ridge regression gives the box (centre offset from the cell, log width and
height in cells) for cells that are not background. Detection keeps the cells that are a local
peak of a label's score, decodes their boxes and removes overlaps (non-maximum suppression),
within a view and then across the views of an image.

A cell is an example of a box when its centre lies in the box's central part (``CENTRE``) —
a few cells per object, so small data sets still have positives. Stored like a classifier's
head (server/ai/heads.py): raw float32 bytes and a JSON description carrying their sha256, so
a corrupted row is refused (:func:`load_detector` raises ``ModelError``). CPU-heavy: run it off
the event loop. scikit-learn fits the regressions (as in server/ai/training.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.ai.errors import ModelError

__all__ = ["FEATURE", "SIZE", "STRIDE", "Box", "Detected", "Detector", "cell_features",
           "fit_detector", "iou", "load_detector", "nms", "targets", "view_boxes", "views"]

SIZE = 320  # network input for detection: objects of ~48-120 px at this size suit stride 16
STRIDE = 16
FEATURE = "lite0-maps@1"  # what a detector reads: EfficientNet-Lite0's stride-16 and 32 maps
CENTRE = 0.25  # a cell is positive when its centre is within this share of the box from its centre
TILE_ABOVE = 2 * SIZE  # images whose longer side is at least this also get tiles
TILE_SHARE = 0.625  # a tile's side, as a share of the image's (2 x 2 tiles, overlapping)
MIN_VISIBLE = 0.7  # a box trains a view when at least this share of it lies in the view
C = 1.0
RIDGE = 1.0

Box = tuple[str, float, float, float, float]  # (label, x, y, w, h)
Rect = tuple[int, int, int, int]  # (x, y, w, h) of a view, in image pixels


@dataclass(frozen=True)
class Detected:
    """A box in the image's own pixels: ``x, y`` its top-left corner."""

    label: str
    score: float
    x: float
    y: float
    w: float
    h: float


def views(width: int, height: int) -> list[Rect]:
    """The parts of an image the network looks at: all of it, and for a large image also 2 x 2
    overlapping tiles (each ``TILE_SHARE`` of its sides), so smaller objects stay visible."""
    out: list[Rect] = [(0, 0, width, height)]
    if max(width, height) >= TILE_ABOVE:
        tw, th = math.ceil(width * TILE_SHARE), math.ceil(height * TILE_SHARE)
        out += [(x, y, tw, th) for y in (0, height - th) for x in (0, width - tw)]
    return out


def view_boxes(boxes: Sequence[Box], rect: Rect) -> list[Box]:
    """The boxes mostly inside a view, clipped to it, in its ``SIZE`` x ``SIZE`` pixels."""
    vx, vy, vw, vh = rect
    sx, sy = SIZE / vw, SIZE / vh
    out: list[Box] = []
    for name, x, y, w, h in boxes:
        x0, y0 = max(x, vx), max(y, vy)
        x1, y1 = min(x + w, vx + vw), min(y + h, vy + vh)
        if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < MIN_VISIBLE * w * h:
            continue
        out.append((name, (x0 - vx) * sx, (y0 - vy) * sy, (x1 - x0) * sx, (y1 - y0) * sy))
    return out


def _unit_columns(x: np.ndarray) -> np.ndarray:
    """Each column (one cell's channels) L2-normalised, as :func:`cell_features` does rows."""
    return x / np.maximum(np.linalg.norm(x, axis=0, keepdims=True), 1e-6)


def cell_features(map16: np.ndarray, map32: np.ndarray) -> np.ndarray:
    """``(H * W, C16 + C32)`` per-cell vectors of one view's maps (``(C, H, W)``, ``(C, H/2,
    W/2)``), each half L2-normalised."""
    c16, h, w = map16.shape
    up = np.repeat(np.repeat(np.asarray(map32, np.float32), 2, axis=1), 2, axis=2)[:, :h, :w]
    a = np.asarray(map16, np.float32).reshape(c16, -1).T
    b = up.reshape(up.shape[0], -1).T
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-6)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-6)
    return np.hstack([a, b]).astype(np.float32)


def targets(boxes: Sequence[tuple[int, float, float, float, float]], h: int, w: int
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
    threshold: float = 0.5  # boxes scoring at least this are the confident ones

    def detect(self, cells: np.ndarray, h: int, w: int, rect: Rect,
               threshold: float | None = None) -> list[Detected]:
        """Boxes in image pixels from one view's :func:`cell_features` (maps of ``h`` x ``w``
        cells; ``rect`` the view in the image)."""
        z = cells @ self.coef.T + self.intercept
        reg = cells @ self.reg_coef.T + self.reg_intercept
        return self._boxes(z, reg, h, w, rect, threshold)

    def detect_maps(self, map16: np.ndarray, map32: np.ndarray, rect: Rect,
                    threshold: float | None = None) -> list[Detected]:
        """:meth:`detect` of ``cell_features(map16, map32)``, without building those cells.

        Both halves are linear, so the stride-32 half's products are taken on its own cells
        (a quarter as many) and then upsampled: the (cells, 1392) matrix, the part of the time
        that was not the network's, is never made."""
        c16, h, w = map16.shape
        c32 = map32.shape[0]
        a = _unit_columns(np.asarray(map16, np.float32).reshape(c16, -1))
        b = _unit_columns(np.asarray(map32, np.float32).reshape(c32, -1))
        weights = np.vstack([self.coef, self.reg_coef])  # (labels + 1 + 4, c16 + c32)
        coarse = (weights[:, c16:] @ b).reshape(-1, *map32.shape[1:])
        up = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)[:, :h, :w].reshape(len(weights), -1)
        out = (weights[:, :c16] @ a + up).T  # (cells, labels + 1 + 4)
        n = self.coef.shape[0]
        return self._boxes(out[:, :n] + self.intercept, out[:, n:] + self.reg_intercept, h, w,
                           rect, threshold)

    def _boxes(self, z: np.ndarray, reg: np.ndarray, h: int, w: int, rect: Rect,
               threshold: float | None) -> list[Detected]:
        """Boxes from per-cell class logits ``z`` and box regressions ``reg``."""
        floor = self.threshold if threshold is None else threshold
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        vx, vy, vw, vh = rect
        sx, sy = vw / (w * STRIDE), vh / (h * STRIDE)
        scores = p[:, 1:].T.reshape(-1, h, w)  # (labels, h, w)
        padded = np.pad(scores, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
        peak = np.max([padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)],
                      axis=0)
        found: list[Detected] = []
        for j, cy, cx in zip(*np.nonzero((scores >= floor) & (scores >= peak)), strict=True):
            r = reg[cy * w + cx]
            mx, my = (cx + 0.5 + r[0]) * STRIDE, (cy + 0.5 + r[1]) * STRIDE
            bw, bh = np.exp(np.clip(r[2:], -3, 5)) * STRIDE
            found.append(Detected(self.labels[j], float(scores[j, cy, cx]),
                                  float(vx + (mx - bw / 2) * sx), float(vy + (my - bh / 2) * sy),
                                  float(bw * sx), float(bh * sy)))
        return nms(found)

    def weights(self) -> bytes:
        parts = (self.coef, self.intercept, self.reg_coef, self.reg_intercept)
        return b"".join(np.ascontiguousarray(p, "<f4").tobytes() for p in parts)

    def describe(self) -> dict[str, Any]:
        """The JSON kept beside :meth:`weights` (what :func:`load_detector` needs)."""
        return {"type": "detector", "features": [FEATURE], "size": SIZE, "stride": STRIDE,
                "dim": int(self.coef.shape[1]), "threshold": float(self.threshold),
                "sha256": hashlib.sha256(self.weights()).hexdigest()}

    def with_threshold(self, threshold: float) -> Detector:
        return Detector(self.labels, self.coef, self.intercept, self.reg_coef,
                        self.reg_intercept, threshold)


def load_detector(description: Mapping[str, Any], labels: Sequence[str], blob: bytes | None
                  ) -> Detector:
    """A detector from its stored form; ``ModelError`` saying what is wrong when corrupted."""
    try:
        dim = int(description["dim"])
        threshold = float(description["threshold"])
        digest = str(description["sha256"])
        kind, size = description["type"], int(description["size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the stored detector description is incomplete ({exc!r})") from None
    if kind != "detector" or size != SIZE:
        raise ModelError(f"the stored model is not a detector this server runs ({kind}, {size})")
    n = len(labels) + 1
    expected = 4 * (n * (dim + 1) + 4 * (dim + 1))
    if n < 2 or dim < 1 or blob is None or len(blob) != expected:
        raise ModelError(f"the stored weights have {'no' if blob is None else len(blob)} bytes, "
                         f"expected {expected} ({len(labels)} labels, {dim} inputs, float32)")
    if hashlib.sha256(blob).hexdigest() != digest:
        raise ModelError("the stored weights do not match their checksum")
    v = np.frombuffer(blob, "<f4").astype(np.float32)
    if not np.isfinite(v).all():
        raise ModelError("the stored weights hold non-finite numbers")
    a, b, c = n * dim, n * dim + n, n * dim + n + 4 * dim
    return Detector(tuple(labels), v[:a].reshape(n, dim), v[a:b].copy(),
                    v[b:c].reshape(4, dim), v[c:].copy(), threshold)


def fit_detector(x: np.ndarray, y: np.ndarray, reg: np.ndarray, labels: Sequence[str]) -> Detector:
    """Fit on sample cells ``x`` whose classes are ``y`` (0: background) and whose box targets
    are ``reg`` (used where ``y > 0``). The caller limits BLAS threads (threadpoolctl)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    pos = np.flatnonzero(y > 0)
    if pos.size == 0:
        raise ValueError("no boxes to learn from")
    # A few hundred iterations at this tolerance: the last digits of the loss do not move mAP.
    clf = LogisticRegression(C=C, max_iter=300, tol=1e-3).fit(x, y)
    ridge = Ridge(alpha=RIDGE).fit(x[pos], reg[pos])
    coef = np.zeros((len(labels) + 1, x.shape[1]), np.float32)
    intercept = np.full(len(labels) + 1, -30.0, np.float32)  # a label absent here never wins
    classes = clf.classes_.astype(int)
    if classes.size == 2:  # scikit-learn keeps one row for two classes: softmax([0, z])
        coef[classes[1]], intercept[classes[1]] = clf.coef_[0], clf.intercept_[0]
        coef[classes[0]], intercept[classes[0]] = 0.0, 0.0
    else:
        coef[classes], intercept[classes] = clf.coef_, clf.intercept_
    return Detector(tuple(labels), coef, intercept, ridge.coef_.astype(np.float32),
                    ridge.intercept_.astype(np.float32))
