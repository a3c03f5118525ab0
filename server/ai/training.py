"""Training a classifier on the images people labeled — pure (numpy and scikit-learn, no I/O).

The model is logistic regression on stored image features (:mod:`server.ai.heads`):
multinomial (softmax) when each image has one label, one-vs-rest when images may carry several.
Which features (the network's, HOG, or both joined) is chosen by cross-validation on the
labeled images, and the chosen one's out-of-fold scores give the version's metrics: accuracy,
per-label precision and recall at the chosen score threshold, a precision-recall curve, and a
learning curve (quality against the number of training images).

scikit-learn fits the regressions (a well-kept library: its L-BFGS solver is what we would
otherwise hand-write); predicting needs only numpy (``LinearHead.scores``).
CPU-heavy: call :func:`train` in a worker thread, never on an event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.ai.heads import LinearHead, assemble
from server.ai.vectors import candidate_views

__all__ = ["FOLDS", "MIN_PER_LABEL", "TARGET_PRECISION", "C", "TrainingError", "shortfalls", "train"]

C = 10.0  # inverse regularisation: the few-shot table in docs/ai.md was measured with it
FOLDS = 5  # cross-validation folds at most (fewer when a label has fewer examples)
MIN_PER_LABEL = 2  # cross-validation needs each label in a training and a held-out part
TARGET_PRECISION = 0.9  # the threshold is the lowest score still this precise (else best F1)
CURVE_POINTS = 50
LEARNING_FRACTIONS = (0.125, 0.25, 0.5)  # of a fold's training part; 1.0 is the full run
_ABSENT = -30.0  # intercept of a label missing from a fold's training part


class TrainingError(ValueError):
    """The labeled images cannot train this model (the message says what is missing)."""


def shortfalls(counts: Mapping[str, int], total: int, multi_label: bool) -> list[str]:
    """What the labeled images lack for training, one sentence each (empty: enough).

    ``counts``: examples per label; ``total``: labeled images (multi-label: those without a
    label are its negative examples, which it needs as many of)."""
    problems: list[str] = []
    if len(counts) < 2:
        have = ", ".join(repr(n) for n in counts) or "none"
        problems.append(f"training needs at least two labels with labeled images (have: {have})")
    for name, n in sorted(counts.items()):
        if n < MIN_PER_LABEL:
            problems.append(f"label {name!r} has {n} labeled image(s); it needs {MIN_PER_LABEL}")
        elif multi_label and total - n < MIN_PER_LABEL:
            problems.append(f"label {name!r} is on {n} of {total} labeled images; it needs "
                            f"{MIN_PER_LABEL} labeled images without it")
    return problems


@dataclass(frozen=True)
class _Data:
    targets: np.ndarray  # (n, L) bool
    multi: bool

    @property
    def y(self) -> np.ndarray:
        return self.targets.argmax(axis=1)


def _fit(x: np.ndarray, data: _Data, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    n_labels, dim = data.targets.shape[1], x.shape[1]
    coef = np.zeros((n_labels, dim), np.float32)
    intercept = np.full(n_labels, _ABSENT, np.float32)
    if data.multi:
        for j in range(n_labels):
            t = data.targets[rows, j]
            if t.all() or not t.any():  # one class only in this part: a constant score
                intercept[j] = -_ABSENT if t.all() else _ABSENT
                continue
            clf = LogisticRegression(C=C, max_iter=300, tol=1e-3).fit(x[rows], t)
            coef[j], intercept[j] = clf.coef_[0], clf.intercept_[0]
        return coef, intercept
    y = data.y[rows]
    clf = LogisticRegression(C=C, max_iter=300, tol=1e-3).fit(x[rows], y)
    classes = clf.classes_.astype(int)
    if classes.size == 2:  # scikit-learn keeps one row for two classes: softmax([0, z]) = sigmoid(z)
        coef[classes[0]], intercept[classes[0]] = 0.0, 0.0
        coef[classes[1]], intercept[classes[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        coef[classes], intercept[classes] = clf.coef_, clf.intercept_
    return coef, intercept


def _head(features: Sequence[str], labels: Sequence[str], multi: bool, coef: np.ndarray,
          intercept: np.ndarray, threshold: float = 0.5) -> LinearHead:
    return LinearHead(tuple(features), tuple(labels), multi, coef, intercept, threshold)


def _folds(data: _Data, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    n = data.targets.shape[0]
    if data.multi:
        splitter: Any = KFold(n_splits=min(FOLDS, n), shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n)))
    smallest = int(np.bincount(data.y, minlength=data.targets.shape[1]).min())
    splitter = StratifiedKFold(n_splits=max(2, min(FOLDS, smallest)), shuffle=True,
                               random_state=seed)
    return list(splitter.split(np.zeros(n), data.y))


def _out_of_fold(x: np.ndarray, data: _Data, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                 ) -> np.ndarray:
    scores = np.zeros(data.targets.shape, np.float32)
    for train_rows, test_rows in folds:
        coef, intercept = _fit(x, data, train_rows)
        scores[test_rows] = _head(["x"], ["l"] * coef.shape[0], data.multi, coef,
                                  intercept).scores(x[test_rows])
    return scores


def _quality(scores: np.ndarray, data: _Data) -> float:
    """Top-1 accuracy (single-label) or micro-averaged average precision (multi-label)."""
    if not data.multi:
        return float((scores.argmax(axis=1) == data.y).mean())
    order = np.argsort(-scores.ravel(), kind="stable")
    hits = data.targets.ravel()[order]
    if not hits.any():
        return 0.0
    precision_at = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(precision_at[hits].mean())


def _pr_points(scores: np.ndarray, data: _Data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, precision, recall), thresholds descending: single-label predicts the top
    label when its score reaches the threshold; multi-label every label that reaches it."""
    if data.multi:
        s, hit = scores.ravel(), data.targets.ravel()
        positives = max(1, int(hit.sum()))
    else:
        s = scores.max(axis=1)
        hit = scores.argmax(axis=1) == data.y
        positives = s.size
    order = np.argsort(-s, kind="stable")
    s, hit = s[order], hit[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # the last row of each distinct score
    tp = np.cumsum(hit)[last]
    made = last + 1
    return s[last], tp / made, tp / positives


def _threshold(thresholds: np.ndarray, precision: np.ndarray, recall: np.ndarray) -> float:
    precise = np.flatnonzero(precision >= TARGET_PRECISION)
    if precise.size:
        return float(thresholds[precise.max()])  # the lowest precise enough: most recall
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(f1.argmax())])


def _decimate(*arrays: np.ndarray) -> list[list[float]]:
    n = arrays[0].size
    pick: list[int] = sorted({round(float(i)) for i in np.linspace(0, n - 1, min(n, CURVE_POINTS))})
    return [[round(float(a[i]), 4) for a in arrays] for i in pick]


def _metrics(scores: np.ndarray, data: _Data, labels: Sequence[str]) -> tuple[float, dict[str, Any]]:
    thresholds, precision, recall = _pr_points(scores, data)
    t = _threshold(thresholds, precision, recall)
    if data.multi:
        predicted = scores >= t
        accuracy = float((predicted == data.targets).all(axis=1).mean())
    else:
        top = scores.argmax(axis=1)
        predicted = np.zeros_like(data.targets)
        confident = scores.max(axis=1) >= t
        predicted[np.flatnonzero(confident), top[confident]] = True
        accuracy = float((top == data.y).mean())
    per_label = []
    for j, name in enumerate(labels):
        tp = int((predicted[:, j] & data.targets[:, j]).sum())
        made, truth = int(predicted[:, j].sum()), int(data.targets[:, j].sum())
        per_label.append({"label": name, "examples": truth,
                          "precision": round(tp / made, 4) if made else None,
                          "recall": round(tp / truth, 4) if truth else None})
    return t, {"accuracy": round(accuracy, 4), "threshold": round(t, 4), "labels": per_label,
               "pr_curve": [{"threshold": a, "precision": b, "recall": c}
                            for a, b, c in _decimate(thresholds, precision, recall)]}


def _learning_curve(x: np.ndarray, data: _Data, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                    full: float, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    points: list[dict[str, Any]] = []
    used = folds[: min(3, len(folds))]
    for fraction in LEARNING_FRACTIONS:
        quality, sizes = [], []
        for train_rows, test_rows in used:
            keep = rng.permutation(train_rows)[: max(2, round(fraction * train_rows.size))]
            if not data.multi:  # every label keeps an example, as a person would start
                firsts = [train_rows[data.y[train_rows] == j][:1] for j in range(data.targets.shape[1])]
                keep = np.unique(np.concatenate([keep, *firsts]))
            coef, intercept = _fit(x, data, keep)
            s = _head(["x"], ["l"] * coef.shape[0], data.multi, coef, intercept).scores(x[test_rows])
            quality.append(_quality(s, _Data(data.targets[test_rows], data.multi)))
            sizes.append(keep.size)
        points.append({"images": int(np.mean(sizes)), "quality": round(float(np.mean(quality)), 4)})
    n_train = int(np.mean([f[0].size for f in folds]))
    points.append({"images": n_train, "quality": round(full, 4)})
    return points


def train(vectors: Mapping[str, np.ndarray], targets: np.ndarray, labels: Sequence[str],
          multi_label: bool, seed: int = 0) -> tuple[LinearHead, dict[str, Any]]:
    """:func:`_train` with BLAS and OpenMP on one thread: many threads on these small problems
    fight over shared cores (measured 20x slower on 2 busy cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _train(vectors, targets, labels, multi_label, seed)


def _train(vectors: Mapping[str, np.ndarray], targets: np.ndarray, labels: Sequence[str],
           multi_label: bool, seed: int = 0) -> tuple[LinearHead, dict[str, Any]]:
    """Fit a head on ``vectors`` (feature key -> ``(n, dim)`` unit rows, keys in preference
    order) whose labels are ``targets`` (``(n, len(labels))`` bool; single-label: exactly one
    per row), and measure it. Returns the head (fitted on all the rows) and its metrics."""
    targets = np.asarray(targets, bool)
    counts = dict(zip(labels, targets.sum(axis=0).tolist(), strict=True))
    problems = shortfalls(counts, targets.shape[0], multi_label)
    if problems:
        raise TrainingError("; ".join(problems))
    if not multi_label and not (targets.sum(axis=1) == 1).all():
        raise TrainingError("single-label training needs exactly one label per image")
    data = _Data(targets, multi_label)
    folds = _folds(data, seed)
    by_view: dict[str, tuple[float, np.ndarray]] = {}
    for view in candidate_views(list(vectors)):
        x = assemble(vectors, view.keys)
        scores = _out_of_fold(x, data, folds)
        by_view[view.name] = (_quality(scores, data), scores)
    views = {v.name: v for v in candidate_views(list(vectors))}
    best = max(by_view, key=lambda name: by_view[name][0])  # the first of equals
    quality, scores = by_view[best]
    threshold, metrics = _metrics(scores, data, labels)
    x = assemble(vectors, views[best].keys)
    metrics["learning_curve"] = _learning_curve(x, data, folds, quality, seed)
    metrics.update({
        "feature": best, "folds": len(folds), "images": int(targets.shape[0]),
        "quality_measure": "micro average precision" if multi_label else "top-1 accuracy",
        "cross_validation": {name: round(q, 4) for name, (q, _) in by_view.items()}})
    coef, intercept = _fit(x, data, np.arange(targets.shape[0]))
    return _head(views[best].keys, labels, multi_label, coef, intercept, threshold), metrics
