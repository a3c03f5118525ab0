"""Small generated test images (no binary fixtures in the repo)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def scene(path: Path, seed: int, size: tuple[int, int] = (320, 240)) -> Path:
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (60 + 40 * seed % 180, 140, 90), np.uint8)
    for _ in range(4):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(20, w - 60)), int(rng.integers(20, h - 60))
        cv2.rectangle(img, (x, y), (x + 40, y + 30), c, -1)
    cv2.circle(img, (w // 2, h // 2), 30, (240, 240, 240), -1)
    ok = cv2.imwrite(str(path), img)
    assert ok
    return path
