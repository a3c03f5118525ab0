"""Similarity rankings and label suggestions over a project's vectors — pure numpy, no I/O.

A :class:`Snapshot` holds the vectors of one project's images (``server/ai/index.py`` loads and
caches it); the functions here rank rows of it. Row numbers, not image ids, go in and out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from server.ai.vectors import QUANTUM, View, choose_view, knn_scores, normalize, similarities

__all__ = ["MAX_EXAMPLES", "Examples", "Snapshot", "Suggestion", "example_scores", "pick_view",
           "row_scores", "suggest"]

MAX_EXAMPLES = 256  # examples of a label compared with every image (a seeded sample past this)
NEAREST_EXAMPLES = 3  # an image's similarity to a label: the mean over its closest examples
MAX_SUGGESTED = 5  # labels listed per image
MIN_SCORE = 0.01  # labels scoring below this are not listed
_CHUNK = 4_096


@dataclass(frozen=True)
class Snapshot:
    """Vectors of a project's images: ``ids`` (sorted image ids having any vector) and, per
    feature key, an int16 ``(n, d)`` matrix (``vectors.quantize``; zero rows where absent) and
    a ``present`` mask."""

    ids: np.ndarray
    matrices: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    keys: tuple[str, ...] = field(default=())

    def rows_of(self, image_ids: Sequence[int]) -> np.ndarray:
        """Row of each image id, -1 for images without vectors."""
        wanted = np.asarray(image_ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.full(wanted.shape, -1, np.int64)
        pos = np.clip(np.searchsorted(self.ids, wanted), 0, len(self.ids) - 1)
        return np.where(self.ids[pos] == wanted, pos, -1)

    def usable(self, view: View) -> np.ndarray:
        """Rows that have every feature of the view."""
        mask = np.ones(len(self.ids), bool)
        for key in view.keys:
            mask &= self.present[key]
        return mask

    def vectors(self, key: str, rows: np.ndarray) -> np.ndarray:
        """Rows of one feature as float32 unit vectors."""
        return np.asarray(self.matrices[key][rows], np.float32) * np.float32(1 / QUANTUM)

    def sims(self, view: View, query_rows: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``(q, n)`` similarities of the query rows to ``rows`` (all by default), averaged
        over the view's features."""
        out: np.ndarray | None = None
        for key in view.keys:
            matrix = self.matrices[key]
            target = matrix if rows is None else matrix[rows]
            part = similarities(target, self.vectors(key, query_rows), 1 / QUANTUM)
            out = part if out is None else out + part
        assert out is not None
        return out / len(view.keys)


def row_scores(snap: Snapshot, view: View, row: int) -> np.ndarray:
    """Similarity of every row to one row (``-inf`` for itself and rows lacking the view)."""
    scores = snap.sims(view, np.array([row]))[0]
    scores[~snap.usable(view)] = -np.inf
    scores[row] = -np.inf
    return scores


def example_scores(snap: Snapshot, view: View, examples: np.ndarray) -> np.ndarray:
    """Each row's mean similarity to its closest examples (``-inf`` for the examples
    themselves and rows lacking the view)."""
    usable = snap.usable(view)
    examples = examples[usable[examples]]
    if examples.size > MAX_EXAMPLES:
        examples = np.sort(np.random.default_rng(0).choice(examples, MAX_EXAMPLES, replace=False))
    scores = np.full(len(snap.ids), -np.inf, np.float32)
    rows = np.flatnonzero(usable)
    if examples.size == 0 or rows.size == 0:
        return scores
    near = min(NEAREST_EXAMPLES, examples.size)
    for start in range(0, rows.size, _CHUNK):
        chunk = rows[start : start + _CHUNK]
        sims = snap.sims(view, examples, chunk)  # (examples, chunk)
        top = -np.partition(-sims, near - 1, axis=0)[:near]
        scores[chunk] = top.mean(axis=0)
    scores[examples] = -np.inf
    return scores


@dataclass(frozen=True)
class Examples:
    """The labeled images suggestions learn from: rows, a ``(m, L)`` boolean label matrix over
    ``names``, and the feature keys all of them have."""

    rows: np.ndarray
    labels: np.ndarray
    names: list[str]
    keys: list[str]
    _matrices: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, snap: Snapshot, labeled: dict[int, list[str]]) -> Examples:
        names = sorted({n for ns in labeled.values() for n in ns})
        column = {n: j for j, n in enumerate(names)}
        ids = sorted(labeled)
        rows = snap.rows_of(ids)
        keys = [k for k in snap.keys if bool(snap.present[k][rows[rows >= 0]].any())]
        keep = rows >= 0
        for key in keys:
            keep[keep] &= snap.present[key][rows[keep]]
        matrix = np.zeros((int(keep.sum()), len(names)), bool)
        for i, image_id in enumerate(np.asarray(ids)[keep]):
            for n in labeled[int(image_id)]:
                matrix[i, column[n]] = True
        return cls(rows[keep], matrix, names, keys)

    def matrix(self, snap: Snapshot, key: str) -> np.ndarray:
        """The examples' vectors of one feature as float32 (kept: the examples of a project
        are compared with every image asked about)."""
        if key not in self._matrices:
            self._matrices[key] = normalize(snap.matrices[key][self.rows])
        return self._matrices[key]

    def vectors(self, snap: Snapshot) -> dict[str, np.ndarray]:
        return {key: self.matrix(snap, key) for key in self.keys}

    def sims(self, snap: Snapshot, view: View, query_rows: np.ndarray) -> np.ndarray:
        """``(q, m)`` similarities of the query rows to the examples, averaged over the view."""
        out = np.zeros((query_rows.size, self.rows.size), np.float32)
        for key in view.keys:
            out += snap.vectors(key, query_rows) @ self.matrix(snap, key).T
        return out / max(len(view.keys), 1)


def pick_view(snap: Snapshot, ex: Examples) -> tuple[View, dict[str, float]]:
    """The view suggestions and similarity use, by leave-one-out accuracy on the examples."""
    if not ex.keys:  # no labeled image has vectors: every feature that exists, averaged
        have = [k for k in snap.keys if bool(snap.present[k].any())] or list(snap.keys)
        return View(tuple(have)), {}
    return choose_view(ex.vectors(snap), ex.labels)


@dataclass(frozen=True)
class Suggestion:
    row: int
    labels: list[tuple[str, float]]  # best first


def suggest(snap: Snapshot, view: View, ex: Examples, query_rows: np.ndarray) -> list[Suggestion]:
    """Per query row with the view's features, its labels with scores in [0, 1], best first
    (a k-NN vote of the examples). A query that is itself an example is scored without itself."""
    out: list[Suggestion] = []
    usable = snap.usable(view)
    position = {int(r): i for i, r in enumerate(ex.rows)}
    for start in range(0, query_rows.size, _CHUNK):
        chunk = query_rows[start : start + _CHUNK]
        ok = chunk[usable[chunk]]
        if ok.size == 0:
            continue
        if ex.rows.size == 0:
            out.extend(Suggestion(int(r), []) for r in ok)
            continue
        sims = ex.sims(snap, view, ok)
        for i, r in enumerate(ok):
            own = position.get(int(r))
            if own is not None:
                sims[i, own] = -4.0  # below any cosine: an example is not its own neighbour
        scores = knn_scores(sims, ex.labels)
        for i, r in enumerate(ok):
            order = np.argsort(-scores[i], kind="stable")[:MAX_SUGGESTED]
            labels = [(ex.names[j], round(float(scores[i, j]), 4)) for j in order
                      if scores[i, j] >= MIN_SCORE]
            out.append(Suggestion(int(r), labels))
    return out
