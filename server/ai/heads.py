"""A trained classifier's linear head over stored image features — pure numpy, no I/O.

A head reads the stored feature vectors of an image (``server.ai.features`` keys), joins them
(:func:`assemble`: each L2-normalised vector scaled by ``1/sqrt(k)`` for ``k`` features, so the
joined vector is a unit vector too) and computes one score per label: a softmax over the labels
(single-label) or a sigmoid per label (multi-label, one-vs-rest). Labels scoring at least the
head's ``threshold`` are the confident ones.

Stored as raw little-endian float32 bytes (coefficients, then intercepts) plus a small JSON
description carrying the bytes' sha256, so a corrupted row is found before it predicts
nonsense (:func:`load` raises ``ModelError``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.ai.errors import ModelError

__all__ = ["LinearHead", "assemble", "load"]


def assemble(vectors: Mapping[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """The joined input ``(n, sum of dims)`` of the given feature keys' vectors (each row
    already L2-normalised, as stored)."""
    scale = np.float32(1.0 / np.sqrt(len(features)))
    return np.concatenate([np.asarray(vectors[k], np.float32) for k in features], axis=1) * scale


@dataclass(frozen=True)
class LinearHead:
    """Scores ``labels`` from the joined ``features``: ``x @ coef.T + intercept``, then a
    softmax (single-label) or a sigmoid per label (multi-label)."""

    features: tuple[str, ...]
    labels: tuple[str, ...]
    multi_label: bool
    coef: np.ndarray  # (labels, dim) float32
    intercept: np.ndarray  # (labels,) float32
    threshold: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        """``(n, labels)`` scores in [0, 1] for joined inputs ``x (n, dim)``."""
        z = np.asarray(x, np.float32) @ self.coef.T + self.intercept
        if self.multi_label:
            return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def weights(self) -> bytes:
        return (np.ascontiguousarray(self.coef, "<f4").tobytes()
                + np.ascontiguousarray(self.intercept, "<f4").tobytes())

    def describe(self) -> dict[str, Any]:
        """The JSON kept beside :meth:`weights` (what :func:`load` needs to read them back)."""
        return {"features": list(self.features), "dim": int(self.coef.shape[1]),
                "multi_label": self.multi_label, "threshold": float(self.threshold),
                "sha256": hashlib.sha256(self.weights()).hexdigest()}


def load(description: Mapping[str, Any], labels: Sequence[str], blob: bytes | None) -> LinearHead:
    """A head from its stored form; ``ModelError`` saying what is wrong when it is corrupted."""
    try:
        features = tuple(str(f) for f in description["features"])
        dim = int(description["dim"])
        multi = bool(description["multi_label"])
        threshold = float(description["threshold"])
        digest = str(description["sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the stored model description is incomplete ({exc!r})") from None
    n = len(labels)
    if not features or n < 1 or dim < 1:
        raise ModelError("the stored model describes no features or no labels")
    if blob is None or len(blob) != 4 * n * (dim + 1):
        size = "no" if blob is None else len(blob)
        raise ModelError(f"the stored weights have {size} bytes, expected {4 * n * (dim + 1)} "
                         f"({n} labels x {dim} inputs + intercepts, float32)")
    if hashlib.sha256(blob).hexdigest() != digest:
        raise ModelError("the stored weights do not match their checksum")
    values = np.frombuffer(blob, "<f4").astype(np.float32)
    if not np.isfinite(values).all():
        raise ModelError("the stored weights hold non-finite numbers")
    return LinearHead(features, tuple(labels), multi, values[: n * dim].reshape(n, dim),
                      values[n * dim :].copy(), threshold)
