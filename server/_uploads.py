"""Upload mechanics before the store and the database: safe names, labels, reading the files
of a form or a ZIP (with bomb checks) into :class:`Staged` entries. ``server/_upload_save.py``
decodes them, writes their files and inserts their rows.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from server.errors import ApiError, invalid
from server.storage import ImageRejected, Prepared

MAX_FILES = 10_000
MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_RATIO = 100  # uncompressed / compressed, past which an entry or the archive is a bomb
RATIO_FLOOR = 1 << 20  # small entries may compress well without being a threat
UNZIP_FACTOR = 4  # the archive may expand to this many times the upload limit
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


def _printable(ch: str) -> bool:
    # Control characters go, and so do lone surrogates (a zip or form may decode bytes with
    # ``surrogateescape``): stored, one makes every later read of the name fail.
    return ch >= " " and ch != "\x7f" and not "\ud800" <= ch <= "\udfff"


def clean_name(raw: str | None) -> str:
    """A relative display name: forward slashes, no ``..``, no absolute path, no control chars."""
    value = "".join(ch for ch in (raw or "").replace("\\", "/") if _printable(ch))
    parts = [p.strip() for p in value.split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    if parts and _DRIVE.match(parts[0]):
        parts[0] = parts[0][2:]
        parts = [p for p in parts if p]
    return "/".join(parts)[-1024:] or "unnamed"


def parse_labels(raw: str | None) -> list[str]:
    names: list[str] = []
    for part in (raw or "").split(","):
        name = "".join(ch for ch in part if _printable(ch)).strip()
        if not name:
            continue
        if len(name) > 200:
            raise invalid("labels: a label name is at most 200 characters")
        if name not in names:
            names.append(name)
    return names


# --- sources -> staged entries (runs in a worker thread) ------------------------------------

@dataclass
class Staged:
    """One file of an upload: its bytes until they are written, what decoding learned
    (``image``) or why it was refused (``error``)."""

    name: str
    labels: list[str] = field(default_factory=list)
    data: bytes | None = None
    image: Prepared | None = None
    error: ImageRejected | None = None


def from_bytes(name: str, data: bytes, limit: int, labels: list[str] | None = None) -> Staged:
    if len(data) > limit:
        return Staged(name, labels or [], error=ImageRejected(
            "too_large", f"the file is larger than {limit} bytes"))
    return Staged(name, labels or [], data=data)


def _unsafe(name: str) -> bool:
    value = name.replace("\\", "/")
    return value.startswith("/") or bool(_DRIVE.match(value)) or ".." in value.split("/")


def _skipped(name: str) -> bool:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def _check_zip(infos: Sequence[zipfile.ZipInfo], max_total: int) -> list[zipfile.ZipInfo]:
    """Refuse the whole archive for an unsafe path or a bomb, judged on the declared sizes."""
    unsafe = [i.filename for i in infos if _unsafe(i.filename)]
    if unsafe:
        raise ApiError(422, "unsafe_path", "the ZIP holds entries with '..' or an absolute path",
                       {"entries": unsafe[:20]})
    files = [i for i in infos if not i.is_dir() and not _skipped(i.filename)]
    if len(files) > MAX_ZIP_ENTRIES:
        raise ApiError(413, "too_many_files", f"the ZIP holds more than {MAX_ZIP_ENTRIES} files")
    total = sum(i.file_size for i in files)
    packed = sum(i.compress_size for i in files)
    if total > max_total:
        raise ApiError(413, "zip_too_large",
                       f"the ZIP expands to more than {max_total} bytes", {"limit_bytes": max_total})
    for info in files:
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_ZIP_RATIO * max(1, info.compress_size):
            raise ApiError(413, "zip_bomb", f"{info.filename} is compressed suspiciously well")
    if total > RATIO_FLOOR and total > MAX_ZIP_RATIO * max(1, packed):
        raise ApiError(413, "zip_bomb", "the ZIP is compressed suspiciously well")
    return files


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """The entry's bytes, counted while reading: never more than declared, never past budget."""
    cap = min(info.file_size, budget)
    chunks: list[bytes] = []
    size = 0
    with archive.open(info) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise ApiError(413, "zip_bomb", f"{info.filename} expands past its declared size")
            chunks.append(chunk)
    return b"".join(chunks)


def read_zip(stream: IO[bytes], max_total: int, max_file: int,
             folder_labels: bool, labels: list[str]) -> list[Staged]:
    """Read every file of a ZIP (checked for bombs first). A refused archive raises."""
    out: list[Staged] = []
    try:
        stream.seek(0)
        with zipfile.ZipFile(stream) as archive:
            files = _check_zip(archive.infolist(), max_total)
            left = max_total
            for info in files:
                name = clean_name(info.filename)
                own = list(labels)
                if folder_labels:
                    for folder in name.split("/")[:-1]:
                        folder = folder[:200].strip()  # a label name is at most 200 characters
                        if folder and folder not in own:
                            own.append(folder)
                if info.file_size > max_file:
                    out.append(Staged(name, own, error=ImageRejected(
                        "too_large", f"the file is larger than {max_file} bytes")))
                    continue
                try:
                    data = _read_entry(archive, info, left)
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
                    out.append(Staged(name, own, error=ImageRejected(
                        "unreadable", "the ZIP entry could not be read")))
                    continue
                left -= len(data)
                out.append(from_bytes(name, data, max_file, own))
    except zipfile.BadZipFile:
        raise ApiError(422, "bad_zip", "the file is not a readable ZIP archive") from None
    return out


def result_error(name: str, exc: ImageRejected) -> dict[str, Any]:
    return {"name": name, "ok": False, "error": {"code": exc.code, "message": exc.message}}
