"""Vector math for similarity and suggestions — pure numpy, no I/O.

Vectors are stored as little-endian float16 (half the bytes of float32; cosine similarities of
L2-normalised vectors move by < 1e-3), held in memory as int16 (:func:`quantize`) and computed
with in float32. Every vector here is L2-normalised, so a dot product is the cosine similarity.

Suggestions are a weighted k-nearest-neighbour vote among the images people labeled: nothing to
train, so each new label counts at the next request. Which feature to compare by (each feature
key alone, or all of them averaged) is chosen per project by leave-one-out accuracy on those
labeled images (:func:`choose_view`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "STORED_DTYPE", "View", "choose_view", "decode", "encode", "knn_scores", "loo_accuracy",
    "normalize", "quantize", "quantize_stored", "similarities", "top_k",
]

STORED_DTYPE = "float16"
K = 10  # neighbours that vote
TEMPERATURE = 0.05  # softmax temperature over cosine similarities: closer neighbours weigh more
LOO_SAMPLE = 1_000  # leave-one-out among at most this many labeled images (the cost is m^2 d)
_CHUNK = 8_192  # rows of a float16 matrix cast to float32 at a time


def encode(vector: np.ndarray) -> bytes:
    """A 1-d vector as little-endian float16 bytes."""
    return np.ascontiguousarray(vector, dtype="<f2").tobytes()


def decode(data: bytes, dim: int, dtype: str = STORED_DTYPE) -> np.ndarray:
    """The stored bytes back as a float32 vector; ``ValueError`` when the size does not match."""
    arr = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
    if arr.shape != (dim,):
        raise ValueError(f"stored vector holds {arr.size} values, expected {dim}")
    return arr.astype(np.float32)


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    m = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


QUANTUM = 32767  # in memory, unit vectors are int16 multiples of 1 / QUANTUM (see below)


def quantize(matrix: np.ndarray) -> np.ndarray:
    """Unit-vector rows as int16 multiples of ``1 / QUANTUM`` (error <= 1.5e-5 a component).

    The in-memory form of a project's vectors: as small as float16, but numpy turns int16 into
    float32 with SIMD instructions and float16 with a scalar loop, so a scan of 100,000
    vectors takes ~0.3 s instead of ~1.2 s (then BLAS does the products)."""
    m = np.asarray(matrix, np.float32)
    return np.clip(np.rint(m * QUANTUM), -QUANTUM, QUANTUM).astype(np.int16)


_HALF_TO_INT16: np.ndarray | None = None  # every float16 bit pattern, quantized


def quantize_stored(data: np.ndarray) -> np.ndarray:
    """:func:`quantize` of stored float16 values given as their raw ``uint16`` bits: one table
    lookup per value (widening 100,000 x 1,280 float16 to float32 first took seconds)."""
    global _HALF_TO_INT16
    if _HALF_TO_INT16 is None:
        halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
        _HALF_TO_INT16 = quantize(np.nan_to_num(halves.astype(np.float32), posinf=1, neginf=-1))
    return _HALF_TO_INT16[data]


def similarities(matrix: np.ndarray, queries: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Cosine similarities ``(q, n)`` of query rows against the rows of a matrix (float16,
    float32, or :func:`quantize`'d with ``scale = 1 / QUANTUM``), cast to float32 a chunk at a
    time so a large matrix is never held twice in memory."""
    q = np.asarray(queries, dtype=np.float32)
    out = np.empty((q.shape[0], matrix.shape[0]), np.float32)
    buffer = np.empty((min(_CHUNK, matrix.shape[0]), matrix.shape[1]), np.float32)
    for start in range(0, matrix.shape[0], _CHUNK):
        chunk = matrix[start : start + _CHUNK]
        block = buffer[: chunk.shape[0]]
        np.copyto(block, chunk, casting="unsafe")
        out[:, start : start + block.shape[0]] = q @ block.T
    if scale != 1.0:
        out *= scale
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, largest first (ties: lower index first)."""
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return np.zeros(0, np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(n)
    order = np.lexsort((part, -scores[part]))
    return part[order].astype(np.int64)


def knn_scores(sims: np.ndarray, labels: np.ndarray, k: int = K,
               temperature: float = TEMPERATURE) -> np.ndarray:
    """Label scores ``(q, L)`` in [0, 1] from similarities ``(q, m)`` to ``m`` labeled examples
    whose labels are the boolean matrix ``labels (m, L)``: the softmax-weighted share of the
    ``k`` nearest examples that carry each label (an image may carry several)."""
    q, m = sims.shape
    if m == 0 or q == 0:
        return np.zeros((q, labels.shape[1]), np.float32)
    k = min(k, m)
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (q, 1))
    near = np.take_along_axis(sims, idx, axis=1)
    weights = np.exp((near - near.max(axis=1, keepdims=True)) / temperature)
    weights /= weights.sum(axis=1, keepdims=True)
    votes = labels[idx].astype(np.float32)  # (q, k, L)
    return np.clip(np.einsum("qk,qkl->ql", weights, votes), 0.0, 1.0)


def loo_accuracy(gram: np.ndarray, labels: np.ndarray, k: int = K) -> float:
    """Leave-one-out top-1 accuracy of :func:`knn_scores` on ``m`` labeled examples (``gram``:
    their ``(m, m)`` similarities): each is scored against the others, and is right when its
    best label is one it carries."""
    m = labels.shape[0]
    if m < 2:
        return 0.0
    sims = gram.copy()
    # Never one's own neighbour: -4 is below any cosine, so an example falls outside its k
    # nearest whenever m > k, and below that its weight is exp(-100) and changes nothing.
    np.fill_diagonal(sims, -4.0)
    best = knn_scores(sims, labels, k).argmax(axis=1)
    return float(labels[np.arange(m), best].mean())


@dataclass(frozen=True)
class View:
    """What similarities are computed on: one feature key, or several averaged."""

    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.keys)


def candidate_views(keys: Sequence[str]) -> list[View]:
    """Each key alone (in preference order), then all of them together."""
    views = [View((key,)) for key in keys]
    if len(keys) > 1:
        views.append(View(tuple(keys)))
    return views


def choose_view(examples: dict[str, np.ndarray], labels: np.ndarray,
                seed: int = 0) -> tuple[View, dict[str, float]]:
    """The view with the best leave-one-out accuracy on the labeled examples (``examples``:
    feature key -> ``(m, d)`` vectors, keys in preference order; ``labels (m, L)`` boolean),
    and every view's accuracy. Ties go to the earlier view (the first key first); too few
    examples to measure (fewer than two labels with two examples each) to all keys averaged,
    never far from the better feature whatever the images are (docs/ai.md's table)."""
    keys = list(examples)
    views = candidate_views(keys)
    per_label = labels.sum(axis=0)
    if not keys or int((per_label >= 2).sum()) < 2:
        return views[-1] if views else View(()), {}
    if labels.shape[0] > LOO_SAMPLE:  # a seeded sample stands for them all
        pick = np.sort(np.random.default_rng(seed).choice(labels.shape[0], LOO_SAMPLE, replace=False))
        examples = {key: vecs[pick] for key, vecs in examples.items()}
        labels = labels[pick]
    grams = {key: similarities(vecs, vecs) for key, vecs in examples.items()}
    accuracy: dict[str, float] = {}
    for view in views:
        gram = sum((grams[key] for key in view.keys), np.zeros((labels.shape[0],) * 2, np.float32))
        accuracy[view.name] = loo_accuracy(gram / len(view.keys), labels)
    best = max(views, key=lambda v: accuracy[v.name])  # max keeps the first of equals
    return best, accuracy
