"""The network input: size, channel order, scaling."""

from __future__ import annotations

import numpy as np
import pytest

from server.ai.preprocess import INPUT_SIZE, to_batch, to_rgb


def test_batch_shape_and_scaling() -> None:
    red = np.zeros((480, 640, 3), np.uint8)
    red[:, :, 0] = 255
    gray = np.full((10, 20), 127, np.uint8)
    batch = to_batch([red, gray])
    assert batch.shape == (2, 3, INPUT_SIZE, INPUT_SIZE)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, 0], 1.0)  # (255 - 127) / 128
    np.testing.assert_allclose(batch[0, 1], -127 / 128)
    np.testing.assert_allclose(batch[1], 0.0)


def test_to_rgb_accepts_gray_and_rgba_only_uint8() -> None:
    assert to_rgb(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert to_rgb(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    with pytest.raises(ValueError):
        to_rgb(np.zeros((5, 6, 3), np.float32))
    with pytest.raises(ValueError):
        to_rgb(np.zeros((5, 6, 2), np.uint8))
    with pytest.raises(ValueError):
        to_batch([np.zeros((0, 6, 3), np.uint8)])
