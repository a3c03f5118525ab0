"""A ZIP archive written straight into a streaming response, a bounded chunk at a time.

``zipfile`` accepts an unseekable sink (it then writes data descriptors), so each member is
compressed into a small buffer that the response drains between members.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from server.formats.table import guard_cell


class _Sink:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class ZipStream:
    """``add(name, data)`` then ``drain()`` the bytes produced so far; ``close()`` at the end."""

    def __init__(self) -> None:
        self._sink = _Sink()
        sink: Any = self._sink  # write-only, unseekable: zipfile then writes data descriptors
        self._zip = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED,
                                    compresslevel=6)

    def add(self, name: str, data: bytes | str) -> None:
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        self._zip.writestr(info, data)

    def add_stored(self, name: str, data: bytes) -> None:
        """A member written as is: image files are compressed already."""
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        self._zip.writestr(info, data)

    async def add_async(self, name: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Write a member from an async stream (another exporter's output), yielding the output."""
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with self._zip.open(info, "w") as member:
            async for chunk in chunks:
                member.write(chunk)
                yield self.drain()
        yield self.drain()

    def add_chunks(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Write a member piece by piece (a listing spooled to disk), yielding the output so far."""
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with self._zip.open(info, "w") as member:
            for chunk in chunks:
                member.write(chunk)
                yield self.drain()
        yield self.drain()

    def drain(self) -> bytes:
        return self._sink.drain()

    def close(self) -> bytes:
        self._zip.close()
        return self._sink.drain()


class Spool:
    """Text that grows with the project (``train.txt``, ``index.csv``): kept on disk past a few
    MB so an export's memory does not grow with the number of images."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=4 << 20)

    def write(self, text: str) -> None:
        self._file.write(text.encode())

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        self._file.seek(0)
        while chunk := self._file.read(size):
            yield chunk

    def close(self) -> None:
        self._file.close()


def member_path(name: str) -> str:
    """An image name made safe as a relative ZIP path: its folders are kept (``cat/001.jpg`` and
    ``dog/001.jpg`` stay apart), empty, ``.`` and ``..`` parts are dropped (no traversal)."""
    parts = [p.strip() for p in name.replace("\\", "/").split("/")]
    return "/".join(p for p in parts if p and p not in {".", ".."}) or "image"


def member_name(name: str) -> str:
    """The last part of :func:`member_path` (the file name without its folders)."""
    return member_path(name).rsplit("/", 1)[-1]


def stem(name: str) -> str:
    """:func:`member_path` without the file's extension (``cat/001.jpg`` -> ``cat/001``)."""
    path = member_path(name)
    folder, _, base = path.rpartition("/")
    base = base.rsplit(".", 1)[0] if "." in base[1:] else base
    return f"{folder}/{base}" if folder else base


def suffix(name: str, default: str = "jpg") -> str:
    base = member_name(name)
    return base.rsplit(".", 1)[-1] if "." in base[1:] else default


def unique_stems(names: Iterator[str] | list[str], seen: dict[str, int]) -> list[str]:
    """Stems made unique across the archive (``a``, ``a_2``, ...): two images may share a name,
    and names differing only in case would collide when unpacked on Windows or macOS. The
    archive's ``names.csv`` maps each stem back to its image's name."""
    out = []
    for name in names:
        s = stem(name)
        key = s.casefold()
        n = seen.get(key, 0) + 1
        seen[key] = n
        while n > 1 and f"{s}_{n}".casefold() in seen:
            n += 1
        unique = s if n == 1 else f"{s}_{n}"
        if n > 1:
            seen[unique.casefold()] = 1
        out.append(unique)
    return out


def names_rows(stems: list[str], names: list[str]) -> str:
    """``names.csv`` lines (``stem,image``) mapping the archive's files back to image names."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for st, name in zip(stems, names, strict=True):
        writer.writerow([guard_cell(st), guard_cell(name)])
    return buf.getvalue()
