"""The feature registry: which image features exist and how to compute them.

Everyone outside ``server.ai`` uses this module (and the two errors). A feature key carries a
version suffix: when a feature's computation changes, its key changes, so stored vectors under
the old key are simply not found and get recomputed.

Features are float32 and L2-normalised row by row, so a dot product is a cosine similarity
(a featureless image, e.g. one flat colour, has an all-zero HOG row: cosine 0 to everything).
The network loads lazily, on the first batch that asks for it: HOG-only use never pays for it.
Computing is CPU-heavy: call ``Extractor.compute`` off the event loop (a worker thread).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from server.ai import hog
from server.ai.errors import ImageDecodeError, ModelError

if TYPE_CHECKING:
    from server.ai.model import Network

__all__ = [
    "FEATURE_DIMS",
    "FEATURE_KEYS",
    "HOG",
    "LITE0",
    "Extractor",
    "ImageDecodeError",
    "ModelError",
    "decode_image",
]

LITE0 = "lite0@1"  # EfficientNet-Lite0's 1280-d pooled feature (ImageNet-1k weights)
HOG = "hog@1"  # 64 x 64 grayscale, 8-px cells, 9 bins, 2 x 2 blocks: 1764-d
FEATURE_KEYS: tuple[str, ...] = (LITE0, HOG)
FEATURE_DIMS: dict[str, int] = {LITE0: 1280, HOG: hog.DIM}


def decode_image(data: bytes) -> np.ndarray:
    """H x W x 3 RGB uint8 from encoded bytes (JPEG, PNG, ...); ImageDecodeError if not an image."""
    buffer = np.frombuffer(data, np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError("empty image data")
    try:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    if bgr is None:
        raise ImageDecodeError("cannot decode image: not a format OpenCV reads, or corrupted")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _normalised(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class Extractor:
    """Computes feature vectors for batches of RGB images; one per worker process.

    The threads that run the network get their nice value raised by ``nice`` (once, for good):
    run it in threads meant for background work (a worker's CPU threads), or pass ``nice=0``.
    """

    def __init__(self, cache_dir: Path, threads: int = 1, *, nice: int = 10) -> None:
        self.cache_dir = Path(cache_dir)
        self.threads = threads
        self.nice = nice
        self._network: Network | None = None
        self._lock = threading.Lock()

    @property
    def network(self) -> Network:
        """The EfficientNet-Lite0 network, converted and loaded on first use."""
        with self._lock:  # two threads asking at once load it once
            if self._network is None:
                from server.ai.model import Network  # onnxruntime only when needed

                self._network = Network.load(self.cache_dir, threads=self.threads, nice=self.nice)
            return self._network

    def compute(
        self, images_rgb: list[np.ndarray], keys: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """{feature_key: (n, dim) float32, L2-normalised} for the given (default: all) keys."""
        wanted = FEATURE_KEYS if keys is None else tuple(keys)
        unknown = [k for k in wanted if k not in FEATURE_DIMS]
        if unknown:
            raise ValueError(f"unknown feature keys {unknown}; known: {list(FEATURE_KEYS)}")
        out: dict[str, np.ndarray] = {}
        for key in wanted:
            if not images_rgb:
                out[key] = np.zeros((0, FEATURE_DIMS[key]), np.float32)
            elif key == HOG:
                out[key] = hog.hog_batch(images_rgb)
            elif key == LITE0:
                out[key] = _normalised(self.network.features(images_rgb))
        return out
