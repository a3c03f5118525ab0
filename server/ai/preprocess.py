"""The network's input: RGB uint8 images -> an (n, 3, 224, 224) float32 batch.

Each image is resized to 224 x 224 as a whole (no crop: an embedding should see all of the
image) and scaled as the EfficientNet-Lite weights expect, ``(x - 127) / 128``.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["INPUT_SIZE", "MEAN", "STD", "to_batch", "to_rgb"]

INPUT_SIZE = 224
MEAN = 127.0
STD = 128.0


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 view of a grayscale, RGB or RGBA uint8 image."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]
    raise ValueError(f"expected a grayscale, RGB or RGBA image, got shape {image.shape}")


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    rgb = np.ascontiguousarray(to_rgb(image))
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image")
    if (h, w) == (size, size):
        return rgb
    # INTER_AREA averages when shrinking (no aliasing); INTER_LINEAR when enlarging.
    interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def to_batch(images: list[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """(n, 3, size, size) float32, channels first, normalised."""
    out = np.empty((len(images), 3, size, size), np.float32)
    for i, image in enumerate(images):
        out[i] = _resize(image, size).transpose(2, 0, 1)
    out -= MEAN
    out /= STD
    return out
