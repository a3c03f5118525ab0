"""HOG: shape, normalisation, and that it sees shape (similar glyphs are nearer)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from server.ai.hog import DIM, hog, hog_batch


def glyph(text: str, dx: int = 0, thickness: int = 3, size: int = 48) -> np.ndarray:
    image = np.zeros((size, size), np.uint8)
    cv2.putText(image, text, (10 + dx, 38), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, thickness)
    return image


def test_shape_dtype_and_unit_norm() -> None:
    rng = np.random.default_rng(0)
    for image in (
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        rng.integers(0, 256, (8, 8), dtype=np.uint8),
        rng.integers(0, 256, (30, 20, 4), dtype=np.uint8),
    ):
        v = hog(image)
        assert v.shape == (DIM,)
        assert v.dtype == np.float32
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
        assert (v >= 0).all()


def test_flat_image_gives_zero_vector_not_nan() -> None:
    v = hog(np.full((64, 64), 128, np.uint8))
    assert np.isfinite(v).all()
    assert not v.any()


def test_similar_glyphs_are_nearer_than_different_ones() -> None:
    seven, seven_shifted, seven_thin = glyph("7"), glyph("7", dx=2), glyph("7", thickness=2)
    zero, one = glyph("0"), glyph("1")
    v = {name: hog(img) for name, img in [
        ("7", seven), ("7s", seven_shifted), ("7t", seven_thin), ("0", zero), ("1", one),
    ]}  # fmt: skip
    for same in ("7s", "7t"):
        for other in ("0", "1"):
            assert v["7"] @ v[same] > v["7"] @ v[other]


def test_orientation_is_what_it_measures() -> None:
    vertical = np.zeros((64, 64), np.uint8)
    vertical[:, 32:] = 255
    horizontal = vertical.T.copy()
    a, b = hog(vertical), hog(horizontal)
    assert a @ b < 0.2  # an edge turned by 90 degrees votes into other bins
    assert hog(vertical) @ hog(np.roll(vertical, 8, axis=1)) > a @ b


def test_batch_matches_single_and_rejects_bad_shapes() -> None:
    images = [glyph("3"), glyph("5")]
    batch = hog_batch(images)
    assert batch.shape == (2, DIM)
    np.testing.assert_array_equal(batch[1], hog(images[1]))
    assert hog_batch([]).shape == (0, DIM)
    with pytest.raises(ValueError):
        hog(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        hog(np.zeros((0, 4), np.uint8))
