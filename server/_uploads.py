"""Upload mechanics: safe names, ZIP reading with bomb checks, saving staged files.

Files are decoded and staged (``server.storage``) before the database transaction; the
transaction inserts the rows and only then moves the staged files into place, so a refused
upload writes nothing.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from server._label_store import ensure_label_defs
from server.ai.embeddings import request_embedding
from server.errors import ApiError, invalid
from server.models import Image, ImageLabel, utcnow
from server.storage import ImageRejected, ImageStore, StagedImage

MAX_FILES = 10_000
MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_RATIO = 100  # uncompressed / compressed, past which an entry or the archive is a bomb
RATIO_FLOOR = 1 << 20  # small entries may compress well without being a threat
UNZIP_FACTOR = 4  # the archive may expand to this many times the upload limit
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


def clean_name(raw: str | None) -> str:
    """A relative display name: forward slashes, no ``..``, no absolute path, no control chars."""
    value = "".join(ch for ch in (raw or "").replace("\\", "/") if ch >= " " and ch != "\x7f")
    parts = [p.strip() for p in value.split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    if parts and _DRIVE.match(parts[0]):
        parts[0] = parts[0][2:]
        parts = [p for p in parts if p]
    return "/".join(parts)[-1024:] or "unnamed"


def parse_labels(raw: str | None) -> list[str]:
    names: list[str] = []
    for part in (raw or "").split(","):
        name = "".join(ch for ch in part if ch >= " " and ch != "\x7f").strip()
        if not name:
            continue
        if len(name) > 200:
            raise invalid("labels: a label name is at most 200 characters")
        if name not in names:
            names.append(name)
    return names


# --- sources -> staged images (runs in a worker thread) -------------------------------------

@dataclass
class Staged:
    """One file of an upload after decoding: a staged image or the reason it was refused."""

    name: str
    labels: list[str] = field(default_factory=list)
    image: StagedImage | None = None
    error: ImageRejected | None = None


def stage_stream(store: ImageStore, name: str, stream: IO[bytes], limit: int) -> Staged:
    try:
        stream.seek(0)
        data = stream.read(limit + 1)
    except OSError:
        return Staged(name, error=ImageRejected("unreadable", "the file could not be read"))
    return stage_bytes(store, name, data, limit)


def stage_bytes(store: ImageStore, name: str, data: bytes, limit: int,
                labels: list[str] | None = None) -> Staged:
    try:
        return Staged(name, labels or [], image=store.stage(data, max_bytes=limit))
    except ImageRejected as exc:
        return Staged(name, labels or [], error=exc)


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


def stage_zip(store: ImageStore, stream: IO[bytes], max_total: int, max_file: int,
              folder_labels: bool, labels: list[str]) -> list[Staged]:
    """Stage every image of a ZIP. A refused archive raises and leaves nothing staged."""
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
                out.append(stage_bytes(store, name, data, max_file, own))
    except zipfile.BadZipFile:
        discard_all(store, out)
        raise ApiError(422, "bad_zip", "the file is not a readable ZIP archive") from None
    except BaseException:
        discard_all(store, out)
        raise
    return out


def discard_all(store: ImageStore, items: Sequence[Staged]) -> None:
    for item in items:
        if item.image is not None:
            store.discard(item.image)


# --- staged images -> rows (inside the request's transaction) -------------------------------

async def _lock_sha(session: AsyncSession, sha: str) -> None:
    # PostgreSQL: uploads and deletes of the same content take turns, so a delete never removes
    # a file an upload just referenced. SQLite transactions are serialized already.
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": int(sha[:15], 16)})


async def apply_labels(session: AsyncSession, image_id: int, ids: Sequence[int], user_id: int,
                       *, fresh: bool) -> None:
    """Add classification labels; the first one an unlabeled image gets becomes its default."""
    have: dict[int, bool] = {}
    if not fresh:
        have = dict((await session.execute(
            select(ImageLabel.label_id, ImageLabel.is_default)
            .where(ImageLabel.image_id == image_id))).all())
    has_default = any(have.values())
    # Labels list in the order they were added (created_at, see server/_label_store.py).
    now = utcnow()
    for i, label_id in enumerate(ids):
        if label_id in have:
            continue
        session.add(ImageLabel(image_id=image_id, label_id=label_id, is_default=not has_default,
                               source="manual", created_by=user_id,
                               created_at=now + timedelta(microseconds=i)))
        have[label_id] = not has_default
        has_default = True


async def save_staged(session: AsyncSession, store: ImageStore, project_id: int, user_id: int,
                      items: Sequence[Staged]) -> list[tuple[Staged, Image | None, bool]]:
    """Insert rows for the staged images, dedupe by content, label them, place their files."""
    names = [n for item in items if item.image is not None for n in item.labels]
    ids = await ensure_label_defs(session, project_id, names)
    seen: dict[str, Image] = {}
    out: list[tuple[Staged, Image | None, bool]] = []
    to_place: list[StagedImage] = []
    for item in items:
        staged = item.image
        if staged is None:
            out.append((item, None, False))
            continue
        row = seen.get(staged.sha256)
        if row is None:
            await _lock_sha(session, staged.sha256)
            row = (await session.execute(select(Image).where(
                Image.project_id == project_id, Image.sha256 == staged.sha256))).scalar_one_or_none()
        duplicate = row is not None
        if row is None:
            row = Image(project_id=project_id, name=item.name, sha256=staged.sha256,
                        mime=staged.mime, size_bytes=staged.size_bytes, width=staged.width,
                        height=staged.height, uploaded_by=user_id, auto_labeled=False,
                        object_count=0)
            session.add(row)
            await session.flush()
            to_place.append(staged)
        seen[staged.sha256] = row
        await apply_labels(session, row.id, [ids[n] for n in item.labels], user_id,
                           fresh=not duplicate)
        out.append((item, row, duplicate))
    await session.flush()
    if to_place:
        # New content: its feature vectors are computed by a job, committed with the rows.
        await request_embedding(session, project_id, user_id)
    await run_in_threadpool(_place_all, store, to_place)
    return out


def _place_all(store: ImageStore, items: Sequence[StagedImage]) -> None:
    for item in items:
        store.place(item)


def result_error(name: str, exc: ImageRejected) -> dict[str, Any]:
    return {"name": name, "ok": False, "error": {"code": exc.code, "message": exc.message}}
