from __future__ import annotations

import numpy as np

from server.ai.ranking import Examples, Snapshot, example_scores, pick_view, row_scores, suggest
from server.ai.vectors import View, normalize, quantize, top_k


def snapshot(vectors: dict[str, np.ndarray], ids: list[int],
             present: dict[str, np.ndarray] | None = None) -> Snapshot:
    n = len(ids)
    return Snapshot(ids=np.array(ids, np.int64),
                    matrices={k: quantize(normalize(v)) for k, v in vectors.items()},
                    present=present or {k: np.ones(n, bool) for k in vectors},
                    keys=tuple(vectors))


def clusters(seed: int = 0, per: int = 10, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = normalize(rng.normal(size=(3, d))) * 5
    y = np.repeat(np.arange(3), per)
    return normalize(centers[y] + rng.normal(size=(y.size, d))), y


def test_rows_of_maps_ids_and_marks_the_absent() -> None:
    snap = snapshot({"a@1": np.eye(3)}, [4, 7, 9])
    assert snap.rows_of([9, 4, 5, 100, 1]).tolist() == [2, 0, -1, -1, -1]
    empty = snapshot({"a@1": np.zeros((0, 3))}, [])
    assert empty.rows_of([1]).tolist() == [-1]


def test_row_scores_rank_the_same_cluster_first_and_leave_out_the_image() -> None:
    x, y = clusters()
    snap = snapshot({"a@1": x}, list(range(1, 31)))
    scores = row_scores(snap, View(("a@1",)), 0)
    assert scores[0] == -np.inf
    best = top_k(scores, 9)
    assert (y[best] == y[0]).all()


def test_rows_without_the_feature_are_never_ranked() -> None:
    x, _ = clusters()
    present = np.ones(30, bool)
    present[1] = False
    snap = snapshot({"a@1": x}, list(range(1, 31)), {"a@1": present})
    assert row_scores(snap, View(("a@1",)), 0)[1] == -np.inf


def test_example_scores_prefer_images_near_the_examples() -> None:
    x, y = clusters()
    snap = snapshot({"a@1": x}, list(range(1, 31)))
    examples = np.flatnonzero(y == 2)[:3]
    scores = example_scores(snap, View(("a@1",)), examples)
    assert np.isneginf(scores[examples]).all()
    assert (y[top_k(scores, 7)] == 2).all()


def test_suggestions_vote_with_the_labeled_neighbours() -> None:
    x, y = clusters(per=12)
    ids = list(range(1, 37))
    snap = snapshot({"a@1": x, "noise@1": np.random.default_rng(5).normal(size=(36, 16))}, ids)
    labeled = {ids[i]: [f"c{y[i]}"] for i in range(36) if i % 3 == 0}  # 4 per cluster
    ex = Examples.of(snap, labeled)
    assert ex.rows.size == 12 and ex.names == ["c0", "c1", "c2"]
    view, accuracy = pick_view(snap, ex)
    assert view == View(("a@1",)) and accuracy["a@1"] == 1.0
    found = suggest(snap, view, ex, np.arange(36))
    assert len(found) == 36
    for s in found:
        assert s.labels[0][0] == f"c{y[s.row]}"
        assert all(0.0 <= score <= 1.0 for _, score in s.labels)
        assert [sc for _, sc in s.labels] == sorted((sc for _, sc in s.labels), reverse=True)


def test_an_example_is_not_its_own_neighbour() -> None:
    # Two examples far apart, each alone under its label: the suggestion for one comes from
    # the other one only.
    snap = snapshot({"a@1": np.array([[1.0, 0.0], [0.0, 1.0]])}, [1, 2])
    ex = Examples.of(snap, {1: ["x"], 2: ["y"]})
    found = suggest(snap, View(("a@1",)), ex, np.array([0]))
    assert found[0].labels == [("y", 1.0)]


def test_no_examples_no_labels() -> None:
    x, _ = clusters()
    snap = snapshot({"a@1": x}, list(range(1, 31)))
    ex = Examples.of(snap, {})
    view, _ = pick_view(snap, ex)
    assert view == View(("a@1",))
    assert [s.labels for s in suggest(snap, view, ex, np.array([0, 1]))] == [[], []]
