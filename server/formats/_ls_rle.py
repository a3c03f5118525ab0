"""Label Studio's brush RLE (``label_studio_converter/brush.py``), both ways.

A bit stream: 32 bits ``num`` (values: width x height x 4, RGBA), 5 bits ``word size - 1``,
4 x 4 bits ``run-size bit widths - 1`` (usually 3, 4, 8, 16), then runs until ``num`` values
are read: 1 bit "repeat", 2 bits which run-size width, that many bits ``length - 1``, then one
word (repeat) or ``length`` words (literals). The mask is the alpha channel (non-zero).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["decode", "encode"]

_SIZES = (3, 4, 8, 16)


def decode(rle: list[int], width: int, height: int) -> npt.NDArray[np.bool_]:
    """The ``height x width`` mask of a brush RLE; ``ValueError`` if it is malformed or made for
    an image of another size."""
    if not isinstance(rle, list) or not rle or not all(isinstance(v, int) and 0 <= v < 256 for v in rle):
        raise ValueError("rle must be a list of bytes (0..255)")
    bits = np.unpackbits(np.asarray(rle, dtype=np.uint8))
    nbits = len(bits)

    def read(pos: int, n: int) -> int:
        if pos + n > nbits:
            raise ValueError("the brush RLE ends too early")
        value = 0
        for b in bits[pos: pos + n]:
            value = (value << 1) | int(b)
        return value

    num = read(0, 32)
    if num != width * height * 4:
        raise ValueError(f"the brush RLE holds {num} values, not those of a {width}x{height} RGBA image")
    word = read(32, 5) + 1
    sizes = [read(37 + 4 * k, 4) + 1 for k in range(4)]
    pos, i = 53, 0
    out = np.zeros(num, dtype=np.uint8)
    while i < num:
        repeat = read(pos, 1)
        size = sizes[read(pos + 1, 2)]
        j = i + 1 + read(pos + 3, size)
        pos += 3 + size
        if j > num:
            raise ValueError("a brush RLE run passes the end of the image")
        if repeat:
            out[i:j] = read(pos, word)
            pos += word
        else:
            for k in range(i, j):
                out[k] = read(pos, word)
                pos += word
        i = j
    return out.reshape(height, width, 4)[:, :, 3] > 0


def encode(mask: npt.NDArray[np.bool_]) -> list[int]:
    """The brush RLE of ``mask`` (every channel 255 inside, 0 outside, as ``mask2rle`` writes)."""
    flat = np.repeat(mask.reshape(-1).astype(np.uint8) * 255, 4)
    num = len(flat)
    parts = [f"{num:032b}", f"{8 - 1:05b}", "".join(f"{s - 1:04b}" for s in _SIZES)]
    if num:
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        starts = np.concatenate(([0], change))
        lengths = np.diff(np.concatenate((starts, [num])))
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            value = f"{int(flat[start]):08b}"
            while length > 0:
                run = min(length, 1 << 16)
                k = next(k for k, s in enumerate(_SIZES) if run <= 1 << s)
                parts.append(f"1{k:02b}{run - 1:0{_SIZES[k]}b}{value}")
                length -= run
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits[i: i + 8], 2) for i in range(0, len(bits), 8))
