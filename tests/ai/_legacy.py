"""Writes small legacy (pre-1.6) torch state-dict files opcode by opcode, for the reader's tests."""

from __future__ import annotations

import pickle
import struct

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
HEADER = (
    pickle.dumps(MAGIC, protocol=2)
    + pickle.dumps(1001, protocol=2)
    + pickle.dumps(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, protocol=2
    )
)


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _ints(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def legacy_file(
    tensors: dict[str, tuple[str, int, tuple[int, ...], tuple[int, ...]]],
    storages: dict[str, np.ndarray],
) -> bytes:
    """tensors: name -> (storage key, offset, size, stride); storages: key -> float32 data."""
    body = b"\x80\x02ccollections\nOrderedDict\n)R("
    for name, (key, offset, size, stride) in tensors.items():
        body += _str(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        body += b"(" + _str("storage") + b"ctorch\nFloatStorage\n" + _str(key) + _str("cpu")
        body += _int(storages[key].size) + b"NtQ"
        body += _int(offset) + _ints(size) + _ints(stride) + b"\x89ccollections\nOrderedDict\n)R"
        body += b"tR"
    body += b"u."
    keys = list(storages)
    out = HEADER + body + pickle.dumps(keys, protocol=2)
    for key in keys:
        data = np.asarray(storages[key], "<f4")
        out += struct.pack("<q", data.size) + data.tobytes()
    return out
