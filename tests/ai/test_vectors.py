from __future__ import annotations

import numpy as np
import pytest

from server.ai.vectors import (
    QUANTUM,
    View,
    choose_view,
    decode,
    encode,
    knn_scores,
    loo_accuracy,
    normalize,
    quantize,
    quantize_stored,
    similarities,
    top_k,
)


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return normalize(rng.normal(size=(n, d)))


def test_float16_roundtrip_is_half_the_bytes_and_close() -> None:
    v = unit(np.random.default_rng(0), 1, 1280)[0]
    data = encode(v)
    assert len(data) == 1280 * 2
    back = decode(data, 1280)
    assert back.dtype == np.float32
    assert np.abs(back - v).max() < 1e-3
    assert abs(float(back @ v) - 1.0) < 1e-3


def test_decode_refuses_a_wrong_size() -> None:
    with pytest.raises(ValueError, match="expected 10"):
        decode(encode(np.zeros(9, np.float32)), 10)


def test_normalize_keeps_zero_rows_zero() -> None:
    out = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_similarities_of_float16_rows_in_chunks_match_float32() -> None:
    rng = np.random.default_rng(1)
    m = unit(rng, 20_000, 16)
    q = m[:3]
    got = similarities(m.astype(np.float16), q)
    assert got.shape == (3, 20_000)
    assert np.abs(got - q @ m.T).max() < 2e-3


def test_top_k_orders_best_first_and_breaks_ties_by_index() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, -np.inf])
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 0, 4]
    assert top_k(scores, 0).tolist() == []


def test_knn_scores_are_shares_in_0_1_and_the_nearest_label_wins() -> None:
    labels = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], bool)
    sims = np.array([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.95, 0.3]], np.float32)
    scores = knn_scores(sims, labels, k=3)
    assert scores.shape == (2, 2)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[0].argmax() == 0 and scores[1].argmax() == 1
    # With one label everywhere, its score is 1.
    assert np.allclose(knn_scores(sims, np.ones((4, 1), bool)), 1.0)


def test_loo_never_counts_an_example_as_its_own_neighbour() -> None:
    # Two examples of different labels: each one's only other neighbour is wrong.
    gram = np.array([[1.0, 0.2], [0.2, 1.0]], np.float32)
    labels = np.array([[1, 0], [0, 1]], bool)
    assert loo_accuracy(gram, labels) == 0.0


def test_choose_view_picks_the_feature_that_separates_the_labels() -> None:
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 10)
    labels = np.eye(3, dtype=bool)[y]
    centers = unit(rng, 3, 32) * 8
    good = normalize(centers[y] + rng.normal(size=(30, 32)))
    noise = unit(rng, 30, 32)
    view, accuracy = choose_view({"noise@1": noise, "good@1": good}, labels)
    assert view == View(("good@1",))
    assert accuracy["good@1"] > 0.9 > accuracy["noise@1"]
    assert set(accuracy) == {"noise@1", "good@1", "noise@1+good@1"}


def test_choose_view_with_too_few_examples_averages_all_keys() -> None:
    labels = np.array([[1, 0], [0, 1], [0, 1]], bool)
    vecs = unit(np.random.default_rng(3), 3, 4)
    view, accuracy = choose_view({"a@1": vecs, "b@1": vecs}, labels)
    assert view == View(("a@1", "b@1")) and accuracy == {}


def test_quantized_rows_give_the_same_similarities() -> None:
    rng = np.random.default_rng(4)
    m = unit(rng, 1000, 64)
    q = m[:2]
    got = similarities(quantize(m), q, 1 / QUANTUM)
    assert quantize(m).dtype == np.int16
    assert np.abs(got - q @ m.T).max() < 1e-3
    assert quantize(np.array([[1.0, -1.0, 0.0]])).tolist() == [[QUANTUM, -QUANTUM, 0]]


def test_quantizing_stored_halves_by_table_equals_widening_first() -> None:
    v = unit(np.random.default_rng(5), 50, 32)
    raw = np.frombuffer(b"".join(encode(row) for row in v), "<u2").reshape(50, 32)
    assert np.array_equal(quantize_stored(raw), quantize(raw.view("<f2").astype(np.float32)))
