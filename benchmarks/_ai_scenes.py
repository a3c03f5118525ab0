"""Synthetic detection scenes with exact boxes: shapes pasted onto photos from scikit-image's
data (installs from PyPI). Used by ``benchmarks/ai_detection.py`` and the detector tests."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from skimage import data as skdata

__all__ = ["LABELS", "scene", "scenes"]

LABELS = ("circle", "square", "triangle")
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")

Box = tuple[str, float, float, float, float]


@cache
def _photo(name: str) -> np.ndarray:
    image: np.ndarray = getattr(skdata, name)()
    return image


def scene(rng: np.random.Generator, size: int = 320, shapes: tuple[int, int] = (48, 100)
          ) -> tuple[np.ndarray, list[Box]]:
    """An RGB ``size`` x ``size`` crop of a photo with 1-3 filled shapes (white or near-black)
    of ``shapes`` px, not overlapping, and their boxes ``(label, x, y, w, h)``."""
    photo = _photo(_PHOTOS[int(rng.integers(len(_PHOTOS)))])
    h, w = photo.shape[:2]
    y0, x0 = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
    image = cv2.resize(photo[y0 : y0 + 2 * h // 3, x0 : x0 + 2 * w // 3], (size, size)).copy()
    boxes: list[Box] = []
    for _ in range(int(rng.integers(1, 4))):
        s = int(rng.integers(*shapes))
        x, y = int(rng.integers(0, size - s)), int(rng.integers(0, size - s))
        if any(abs(x - bx) < s and abs(y - by) < s for _, bx, by, _, _ in boxes):
            continue
        name = LABELS[int(rng.integers(3))]
        color = (255, 255, 255) if rng.random() < 0.5 else (20, 20, 20)
        if name == "circle":
            cv2.circle(image, (x + s // 2, y + s // 2), s // 2, color, -1)
        elif name == "square":
            cv2.rectangle(image, (x, y), (x + s - 1, y + s - 1), color, -1)
        else:
            pts = np.array([[x + s // 2, y], [x, y + s - 1], [x + s - 1, y + s - 1]], np.int32)
            cv2.fillPoly(image, [pts], color)
        boxes.append((name, float(x), float(y), float(s), float(s)))
    return image, boxes


def scenes(n: int, seed: int = 0, size: int = 320, shapes: tuple[int, int] = (48, 100)
           ) -> list[tuple[np.ndarray, list[Box]]]:
    rng = np.random.default_rng(seed)
    return [scene(rng, size, shapes) for _ in range(n)]
