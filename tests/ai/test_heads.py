"""A linear head's stored form: round trip, and corruption found before it predicts."""

from __future__ import annotations

import numpy as np
import pytest

from server.ai.errors import ModelError
from server.ai.heads import LinearHead, assemble, load


def head(multi: bool = False) -> LinearHead:
    rng = np.random.default_rng(1)
    return LinearHead(("hog@1", "lite0@1"), ("a", "b", "c"), multi,
                      rng.normal(size=(3, 5)).astype(np.float32),
                      rng.normal(size=3).astype(np.float32), 0.4)


def test_round_trip_scores_the_same() -> None:
    for multi in (False, True):
        h = head(multi)
        back = load(h.describe(), list(h.labels), h.weights())
        x = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
        assert np.array_equal(back.scores(x), h.scores(x))
        assert back.features == h.features and back.threshold == pytest.approx(0.4)
    assert np.allclose(head().scores(np.ones((2, 5))).sum(axis=1), 1)
    assert not np.allclose(head(True).scores(np.ones((2, 5))).sum(axis=1), 1)


def test_assemble_joins_unit_vectors_into_a_unit_vector() -> None:
    a = np.array([[1.0, 0.0]], np.float32)
    b = np.array([[0.0, 0.0, 1.0]], np.float32)
    joined = assemble({"x": a, "y": b}, ["x", "y"])
    assert joined.shape == (1, 5) and float(np.linalg.norm(joined)) == pytest.approx(1.0)


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing", "nan", "description"])
def test_corruption_is_a_model_error(damage: str) -> None:
    h = head()
    blob, desc = h.weights(), h.describe()
    if damage == "flip":
        blob = blob[:3] + bytes([blob[3] ^ 1]) + blob[4:]
    elif damage == "truncate":
        blob = blob[:-4]
    elif damage == "missing":
        blob = None  # type: ignore[assignment]
    elif damage == "nan":
        values = np.frombuffer(blob, "<f4").copy()
        values[0] = np.nan
        blob = values.tobytes()
        import hashlib

        desc["sha256"] = hashlib.sha256(blob).hexdigest()
    else:
        del desc["dim"]
    with pytest.raises(ModelError):
        load(desc, list(h.labels), blob)
