"""Training a head on features (pure): the feature chosen by cross-validation, the metrics,
what too few examples say, single- and multi-label."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from server.ai.heads import assemble
from server.ai.hog import hog_batch
from server.ai.training import MIN_PER_LABEL, TrainingError, shortfalls, train


@pytest.fixture(scope="module")
def digit_features() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """HOG of every digit, and a "feature" of pure noise the choice must not take."""
    data = load_digits()
    images = [np.repeat((im * 255 / 16).astype(np.uint8)[:, :, None], 3, axis=2)
              for im in data.images]
    noise = np.random.default_rng(0).normal(size=(len(images), 64)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return {"noise@1": noise, "hog@1": hog_batch(images)}, data.target


def one_hot(y: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((y.size, n), bool)
    out[np.arange(y.size), y] = True
    return out


def test_single_label_picks_hog_over_noise_and_generalises(digit_features: tuple) -> None:
    vectors, target = digit_features
    rows = np.concatenate([np.flatnonzero(target == c)[:10] for c in range(10)])
    labels = [f"d{c}" for c in range(10)]
    head, m = train({k: v[rows] for k, v in vectors.items()}, one_hot(target[rows], 10), labels,
                    False)
    assert m["feature"] == "hog@1" and head.features == ("hog@1",)
    assert m["cross_validation"]["hog@1"] > m["cross_validation"]["noise@1"] + 0.5
    assert m["accuracy"] == m["cross_validation"]["hog@1"] >= 0.8
    test = np.setdiff1d(np.arange(target.size), rows)
    scores = head.scores(assemble({k: v[test] for k, v in vectors.items()}, head.features))
    assert np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    assert (scores.argmax(axis=1) == target[test]).mean() >= 0.8
    # At the chosen threshold precision reaches the target on the held-out images too.
    sure = scores.max(axis=1) >= head.threshold
    assert sure.any() and (scores.argmax(axis=1)[sure] == target[test][sure]).mean() >= 0.85
    assert [p["images"] for p in m["learning_curve"]][-1] == 80


def test_two_labels_single_label_is_a_softmax_of_two_rows(digit_features: tuple) -> None:
    vectors, target = digit_features
    rows = np.concatenate([np.flatnonzero(target == c)[:6] for c in (0, 1)])
    head, m = train({"hog@1": vectors["hog@1"][rows]}, one_hot(target[rows], 2), ["a", "b"], False)
    assert head.coef.shape == (2, vectors["hog@1"].shape[1]) and m["accuracy"] >= 0.9
    assert m["folds"] == 5


def test_multi_label_one_vs_rest(digit_features: tuple) -> None:
    vectors, target = digit_features
    rows = np.arange(200)
    t = np.stack([target[rows] % 2 == 0, target[rows] < 5, target[rows] == 7], axis=1)
    head, m = train({"hog@1": vectors["hog@1"][rows]}, t, ["even", "small", "seven"], True)
    assert head.multi_label and m["quality_measure"] == "micro average precision"
    test = np.arange(200, 600)
    scores = head.scores(vectors["hog@1"][test])
    truth = np.stack([target[test] % 2 == 0, target[test] < 5, target[test] == 7], axis=1)
    assert ((scores >= 0.5) == truth).mean() >= 0.85
    assert {x["label"] for x in m["labels"]} == {"even", "small", "seven"}


def test_shortfalls_name_what_is_missing() -> None:
    assert shortfalls({"a": 5, "b": 5}, 10, False) == []
    assert shortfalls({"a": 5}, 5, False) == [
        "training needs at least two labels with labeled images (have: 'a')"]
    assert shortfalls({}, 0, False) == [
        "training needs at least two labels with labeled images (have: none)"]
    assert shortfalls({"a": 1, "b": 3}, 4, False) == [
        f"label 'a' has 1 labeled image(s); it needs {MIN_PER_LABEL}"]
    assert shortfalls({"a": 4, "b": 2}, 4, True) == [
        f"label 'a' is on 4 of 4 labeled images; it needs {MIN_PER_LABEL} labeled images without it"]
    with pytest.raises(TrainingError, match="label 'b' has 1"):
        train({"hog@1": np.eye(4, dtype=np.float32)}, one_hot(np.array([0, 0, 0, 1]), 2),
              ["a", "b"], False)
