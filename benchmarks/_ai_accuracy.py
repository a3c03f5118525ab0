"""Few-shot accuracy rows for ``benchmarks.ai`` (its *Accuracy* table): top-1 accuracy with
1 / 5 / 20 / 100 labeled images per class on data that ships in packages (scikit-learn
``load_digits``, scikit-image ``lfw_subset``), per feature and classifier, mean over 5 seeds,
and what ``POST /suggestions`` does on the same splits."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

from server.ai.features import FEATURE_KEYS, HOG, LITE0, Extractor
from server.ai.vectors import choose_view, knn_scores

__all__ = ["ACCURACY_ROWS", "SEEDS", "SHOTS"]

SEEDS = 5
SHOTS = (1, 5, 20, 100)


class Context(Protocol):
    """What the rows read of ``benchmarks.ai.Context``."""

    @property
    def cache_dir(self) -> Path: ...


@cache
def _dataset(name: str) -> tuple[list[np.ndarray], np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images = [(img * (255 / 16)).astype(np.uint8) for img in d.images]
        return images, np.asarray(d.target)
    from skimage import data

    faces = data.lfw_subset()  # 100 faces, then 100 non-faces
    return [(img * 255).astype(np.uint8) for img in faces], np.repeat([1, 0], 100)


@cache
def _features(name: str, cache_dir: Path) -> dict[str, np.ndarray]:
    images, _ = _dataset(name)
    out = Extractor(cache_dir, threads=1).compute(images)
    out["both"] = np.hstack([out[HOG], out[LITE0]]) / np.sqrt(2)
    return out


def _split(labels: np.ndarray, shots: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    rng = np.random.default_rng(seed)
    train: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) <= shots:
            return None  # nothing left to test on
        train.extend(rng.choice(idx, shots, replace=False))
    mask = np.zeros(len(labels), bool)
    mask[train] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def _classifier(kind: str, shots: int) -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    if kind == "knn":
        return KNeighborsClassifier(n_neighbors=min(5, shots), weights="distance", metric="cosine")
    return LogisticRegression(C=10.0, max_iter=2000)


def _cells(labels: np.ndarray, score: Callable[[int, np.ndarray, np.ndarray], float]) -> list[str]:
    """One cell per shot count: the mean of ``score(shots, train, test)`` over the seeds' splits
    ("-" when the dataset has too few images per class for that many shots)."""
    cells = []
    for shots in SHOTS:
        scores = []
        for seed in range(SEEDS):
            split = _split(labels, shots, seed)
            if split is None:
                break
            scores.append(score(shots, *split))
        cells.append(f"{np.mean(scores):.2f}" if scores else "-")
    return cells


def _accuracy(ctx: Context, dataset: str, feature: str, kind: str) -> list[str]:
    _, labels = _dataset(dataset)
    x = _features(dataset, ctx.cache_dir)[feature]

    def score(shots: int, train: np.ndarray, test: np.ndarray) -> float:
        clf = _classifier(kind, shots)
        clf.fit(x[train], labels[train])  # type: ignore[attr-defined]
        return float((clf.predict(x[test]) == labels[test]).mean())  # type: ignore[attr-defined]

    return _cells(labels, score)


def _accuracy_row(dataset: str, feature: str, kind: str) -> Callable[[Context], list[str]]:
    def row(ctx: Context) -> list[str]:
        name = {HOG: "HOG", LITE0: "Lite0", "both": "HOG + Lite0"}[feature]
        clf = {"knn": "k-NN (cosine, k = min(5, n))", "logreg": "logistic regression (C = 10)"}[
            kind
        ]
        return [dataset, name, clf, *_accuracy(ctx, dataset, feature, kind)]

    row.__name__ = f"row_{dataset}_{feature}_{kind}"
    return row


ACCURACY_ROWS = [
    _accuracy_row(dataset, feature, kind)
    for dataset in ("digits", "lfw_subset")
    for feature in (HOG, LITE0, "both")
    for kind in ("knn", "logreg")
]


def _suggestions_accuracy(ctx: Context, dataset: str) -> list[str]:
    """What ``POST /suggestions`` does (server/ai/ranking.py): the feature view chosen by
    leave-one-out accuracy on the labeled images, then the softmax-weighted k-NN vote."""
    _, labels = _dataset(dataset)
    feats = _features(dataset, ctx.cache_dir)
    classes = np.unique(labels)

    def score(_shots: int, train: np.ndarray, test: np.ndarray) -> float:
        y = labels[train][:, None] == classes[None, :]
        view, _ = choose_view({k: feats[k][train] for k in FEATURE_KEYS}, y)
        sims = sum(feats[k][test] @ feats[k][train].T for k in view.keys) / len(view.keys)
        predicted = classes[knn_scores(np.asarray(sims, np.float32), y).argmax(axis=1)]
        return float((predicted == labels[test]).mean())

    return _cells(labels, score)


def row_digits_suggestions(ctx: Context) -> list[str]:
    return ["digits", "chosen by leave-one-out", "suggestions: k-NN vote (k = 10, softmax 0.05)",
            *_suggestions_accuracy(ctx, "digits")]


def row_lfw_subset_suggestions(ctx: Context) -> list[str]:
    return ["lfw_subset", "chosen by leave-one-out", "suggestions: k-NN vote (k = 10, softmax 0.05)",
            *_suggestions_accuracy(ctx, "lfw_subset")]


ACCURACY_ROWS += [row_digits_suggestions, row_lfw_subset_suggestions]
