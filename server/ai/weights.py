"""Reads a legacy (pre-1.6, non-zip) torch ``.pth`` state dict into numpy arrays, without torch.

The file is a sequence of pickles followed by raw storages:

1. the magic number ``0x1950a86a20f9469cfc6c``, 2. the protocol version (1001), 3. system info
(endianness, type sizes), 4. the state dict itself, whose tensors name their storages through
persistent ids ``("storage", StorageType, key, location, numel, view_metadata)``, 5. the list of
storage keys in file order, 6. each storage's raw bytes, prefixed by its element count (int64).

Unpickling runs code named by the file, so it is never ``pickle.load``: the unpickler below
resolves only the globals such a file names (OrderedDict, the tensor-rebuild function, the
storage types), to harmless stand-ins; any other global is refused before anything is called.
The caller checks the bytes' sha256 first (``check_sha256``).
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.ai.errors import ModelError

__all__ = ["MAGIC", "check_sha256", "parse_legacy"]

MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return _STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    dtype: np.dtype[Any]
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    """A tensor whose storage bytes come after the pickle: materialised once they are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: object
) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise ModelError("weights file: a tensor without a storage")
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a legacy state dict; everything else is refused."""

    def __init__(self, file: io.BytesIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise ModelError(f"weights file names a global this reader refuses: {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise ModelError(f"weights file: unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or view_metadata is not None:
            raise ModelError("weights file: unsupported storage (a view or an unknown type)")
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(storage_type.dtype, int(numel))
        return storage


def _load(stream: io.BytesIO, storages: dict[str, _Storage]) -> Any:
    return _RestrictedUnpickler(stream, storages).load()


def _materialise(ref: _TensorRef) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise ModelError("weights file: a tensor's storage is missing")
    if any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise ModelError("weights file: negative tensor size, stride or offset")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if 0 not in ref.size and last >= data.size:
        raise ModelError("weights file: a tensor reaches past its storage")
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=[s * item for s in ref.stride]
    )
    return np.array(view, dtype=data.dtype.newbyteorder("="))


def parse_legacy(blob: bytes) -> dict[str, np.ndarray]:
    """The state dict in ``blob`` as {name: array}; ModelError if it is not one this reads."""
    stream = io.BytesIO(blob)
    storages: dict[str, _Storage] = {}
    try:
        if _load(stream, storages) != MAGIC:
            raise ModelError("not a legacy torch weights file (bad magic number)")
        if _load(stream, storages) != _PROTOCOL_VERSION:
            raise ModelError("weights file: unsupported protocol version")
        info = _load(stream, storages)
        if not isinstance(info, dict) or info.get("little_endian") is not True:
            raise ModelError("weights file: not little-endian")
        state = _load(stream, storages)
        keys = _load(stream, storages)
    except ModelError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways; all mean the same here
        raise ModelError(f"weights file is corrupted: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise ModelError("weights file: no state dict")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise ModelError(f"weights file: storage {key!r} is not used by any tensor")
        header = stream.read(8)
        if len(header) != 8:
            raise ModelError("weights file is truncated")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise ModelError(
                f"weights file: storage {key!r} has {numel} elements, not {storage.numel}"
            )
        raw = stream.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise ModelError("weights file is truncated")
        storage.data = np.frombuffer(raw, storage.dtype)
    out: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise ModelError(f"weights file: entry {name!r:.80} is not a tensor")
        out[name] = _materialise(value)
    return out


def check_sha256(blob: bytes, expected: str) -> None:
    """ModelError unless ``blob`` hashes to ``expected`` (hex)."""
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected:
        raise ModelError(
            f"weights file has sha256 {digest[:16]}..., expected {expected[:16]}...: "
            "corrupted or not the file this code was written for (reinstall the package)"
        )
