"""Uploads after reading: decode in parallel, write the files, insert the rows in bulk.

The order keeps one guarantee — no image row without its files, no files left behind by an
upload that never committed — with one sync and a handful of statements per request:

1. :func:`prepare_all`: decode, hash and thumbnail every file in the offload pool (processes,
   off the event loop), a batch per round trip, the batches in parallel.
2. :func:`begin_upload` (transaction 1): under the content locks, note the contents that are
   new to the project as ``upload_intents`` rows and commit them.
3. :func:`write_files`: write originals and thumbnails to the store; it returns when they are
   durable (one ``syncfs`` on a local disk, each PUT's 200 on S3). A local disk is written
   from the offload pool too: the serving process only waits.
4. :func:`finish_upload` (transaction 2, the request's): under the same locks, insert the
   image rows and their labels in one statement each, delete the intents, commit.

A crash between 2 and 4 leaves intents; :func:`sweep` (at startup and every minute) removes
their files once they are older than ``LABELHUB_UPLOAD_GRACE_SECONDS``, unless an image holds
the content by then. Deleting an image keeps the files while an intent names the content.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import offload
from server._label_store import ensure_label_defs
from server._upload_rows import CHUNK_ROWS, existing, insert_images, insert_intents
from server._uploads import Staged
from server.ai.embeddings import request_embedding
from server.db import plan_for_current_sizes, transaction
from server.errors import ApiError
from server.geometry.cost import INLINE_COST
from server.models import Image, ImageLabel, UploadIntent, utcnow
from server.storage import (
    LocalStore,
    StorageUnavailable,
    Store,
    content_keys,
    original_key,
    prepare_many,
    thumb_key,
)
from server.storage.local import unavailable as local_unavailable
from server.storage.rules import Prepared

__all__ = [
    "Saved", "begin_upload", "contents_in_use", "finish_upload", "lock_contents", "prepare_all",
    "sweep", "unavailable", "write_files",
]

log = logging.getLogger(__name__)

_BATCH_FILES = 64  # files per offload round trip
_BATCH_BYTES = 8 << 20
#: Content locks are (class, bucket) advisory locks: one per bucket of the sha, so a request
#: of 10,000 files takes at most this many (PostgreSQL's shared lock table is finite).
LOCK_CLASS = 0x4C48
LOCK_BUCKETS = 1024


def _bucket(sha: str) -> int:
    return int(sha[:8], 16) % LOCK_BUCKETS


async def lock_contents(session: AsyncSession, shas: Collection[str]) -> None:
    """PostgreSQL: uploads, deletes, the sweep and the embedding jobs of the same contents take
    turns (SQLite serializes write transactions already). Buckets in order: no deadlock."""
    if not shas or session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_bucket(sha) for sha in shas})
    await session.execute(text(
        "SELECT count(pg_advisory_xact_lock(:c, k)) FROM unnest(CAST(:keys AS int[])) AS k"),
        {"c": LOCK_CLASS, "keys": keys})


async def contents_in_use(session: AsyncSession, shas: Collection[str]) -> set[str]:
    """Those of ``shas`` an image holds or an upload is writing (call under their locks)."""
    wanted = sorted(set(shas))
    found: set[str] = set()
    for start in range(0, len(wanted), 1000):  # bound each statement's parameter count
        part = wanted[start : start + 1000]
        for column in (Image.sha256, UploadIntent.sha256):
            found.update(await session.scalars(select(column).where(column.in_(part)).distinct()))
    return found


def unavailable(exc: StorageUnavailable) -> ApiError:
    return ApiError(503, "storage_unavailable", exc.message)


# --- 1. decode ------------------------------------------------------------------------------

def _batches(items: Sequence[Staged]) -> list[list[Staged]]:
    out: list[list[Staged]] = []
    size = 0
    for item in items:
        assert item.data is not None
        if not out or len(out[-1]) >= _BATCH_FILES or size + len(item.data) > _BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item.data)
    return out


async def prepare_all(items: Sequence[Staged], limit: int) -> None:
    """Decode every read file (``data``) into ``image`` or ``error``, in the offload pool."""
    todo = [item for item in items if item.data is not None and item.error is None]

    async def run(batch: list[Staged]) -> None:
        blobs = [item.data for item in batch if item.data is not None]
        # A few KB of files decode in well under a millisecond: not worth a process round
        # trip. Past that, pixels cost ~20x the compressed bytes (a rough guide, not a bound).
        cost = 20 * sum(len(b) for b in blobs)
        results = await offload.run(prepare_many, blobs, limit, cost=cost, wait=True)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, Prepared):
                item.image = result
            else:
                item.error = result.error()
                item.data = None

    await asyncio.gather(*(run(batch) for batch in _batches(todo)))


def _contents(items: Sequence[Staged]) -> dict[str, Staged]:
    """The first entry of each content in the upload (the others are its duplicates)."""
    out: dict[str, Staged] = {}
    for item in items:
        if item.image is not None:
            out.setdefault(item.image.sha256, item)
    return out


# --- 2. intents, 3. files -------------------------------------------------------------------

@dataclass
class Upload:
    """What transaction 1 decided: the token of its intents and the contents to write."""

    token: str
    new: list[str]


async def begin_upload(sessions: async_sessionmaker[AsyncSession], project_id: int,
                       items: Sequence[Staged]) -> Upload:
    contents = _contents(items)
    upload = Upload(uuid.uuid4().hex, [])
    if not contents:
        return upload
    shas = sorted(contents)
    async with transaction(sessions) as session:
        await plan_for_current_sizes(session)
        await lock_contents(session, shas)
        have = await existing(session, project_id, shas)
        upload.new = [sha for sha in shas if sha not in have]
        if upload.new:
            await insert_intents(session, upload.token, upload.new, utcnow())
    return upload


async def write_files(sessions: async_sessionmaker[AsyncSession], store: Store,
                      items: Sequence[Staged], upload: Upload) -> None:
    """Write the new contents' files (durable on return), or undo and raise a 503."""
    contents = _contents(items)
    files: list[tuple[str, bytes]] = []
    for sha in upload.new:
        image, data = contents[sha].image, contents[sha].data
        assert image is not None and data is not None
        files += [(original_key(sha), data), (thumb_key(sha), image.thumb)]
    try:
        await _put(store, files)
    except StorageUnavailable as exc:
        await _abandon(sessions, store, upload)
        raise unavailable(exc) from exc
    for item in items:
        item.data = None  # written (or a duplicate): the bytes are not needed any more


async def _put(store: Store, files: list[tuple[str, bytes]]) -> None:
    """``store.put_many``; on a local disk in the offload pool (thousands of small files are
    thousands of syscalls: measured, they held the serving process's core and GIL for ~0.2 s
    per 1,000 images), never inline. S3 PUTs are network waits: they stay on the loop."""
    if not isinstance(store, LocalStore) or not files:
        await store.put_many(files)
        return
    try:
        await offload.run(store.put_many_now, files, os.getpid(), cost=INLINE_COST, wait=True)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise local_unavailable(exc) from exc


async def _abandon(sessions: async_sessionmaker[AsyncSession], store: Store,
                   upload: Upload) -> None:
    """Remove what a failed upload wrote, now if the store answers, else by the sweep later."""
    try:
        async with transaction(sessions) as session:
            await lock_contents(session, upload.new)
            await session.execute(delete(UploadIntent).where(UploadIntent.token == upload.token))
            await session.flush()
            in_use = await contents_in_use(session, upload.new)
            orphans = [sha for sha in upload.new if sha not in in_use]
            await store.delete_many([k for sha in orphans for k in content_keys(sha)])
    except Exception:  # the sweep removes them once the store is back
        log.warning("upload %s: its files stay for the sweep", upload.token, exc_info=True)


# --- 4. rows --------------------------------------------------------------------------------

@dataclass
class Saved:
    """An entry of the upload's answer: the image it became (``None``: refused)."""

    item: Staged
    image_id: int | None
    duplicate: bool


async def finish_upload(session: AsyncSession, project_id: int, user_id: int,
                        items: Sequence[Staged], upload: Upload) -> list[Saved]:
    """Insert the rows (one statement per table), label them, drop the intents. The caller's
    transaction commits them; nothing is visible before that."""
    contents = _contents(items)
    shas = sorted(contents)
    # The request's transaction goes on to read its rows back by id (server/images.py).
    await plan_for_current_sizes(session)
    await lock_contents(session, shas)
    if upload.new:
        gone = await session.execute(delete(UploadIntent).where(UploadIntent.token == upload.token))
        if getattr(gone, "rowcount", len(upload.new)) != len(upload.new):
            # Slower than the grace: the sweep took this upload's intents (and maybe files).
            raise ApiError(503, "upload_expired", "the upload took longer than "
                           "LABELHUB_UPLOAD_GRACE_SECONDS; send it again")
    have = await existing(session, project_id, shas)
    fresh = [item for sha, item in contents.items() if sha not in have]
    inserted = await insert_images(session, project_id, user_id, [
        {"name": item.name, "sha256": image.sha256, "mime": image.mime,
         "size_bytes": image.size_bytes, "width": image.width, "height": image.height}
        for item in fresh if (image := item.image) is not None], utcnow())
    ids = {**have, **inserted}
    await _label(session, project_id, user_id, items, ids, set(inserted.values()))
    if inserted:
        # New content: its feature vectors are computed by a job, committed with the rows.
        await request_embedding(session, project_id, user_id)
    out: list[Saved] = []
    first: set[str] = set()
    for item in items:
        if item.image is None:
            out.append(Saved(item, None, False))
            continue
        sha = item.image.sha256
        out.append(Saved(item, ids[sha], sha in have or sha in first))
        first.add(sha)
    return out


async def _label(session: AsyncSession, project_id: int, user_id: int, items: Sequence[Staged],
                 ids: dict[str, int], fresh: set[int]) -> None:
    """Add classification labels in one insert; an unlabeled image's first becomes its default."""
    names = [n for item in items if item.image is not None for n in item.labels]
    if not names:
        return
    label_ids = await ensure_label_defs(session, project_id, names)
    wanted: dict[int, list[int]] = {}
    for item in items:
        if item.image is not None and item.labels:
            own = wanted.setdefault(ids[item.image.sha256], [])
            own += [label_ids[n] for n in item.labels if label_ids[n] not in own]
    have: dict[int, dict[int, bool]] = {i: {} for i in wanted}
    old = [i for i in wanted if i not in fresh]
    for start in range(0, len(old), CHUNK_ROWS):
        rows = await session.execute(select(ImageLabel.image_id, ImageLabel.label_id,
                                            ImageLabel.is_default)
                                     .where(ImageLabel.image_id.in_(old[start:start + CHUNK_ROWS])))
        for image_id, label_id, is_default in rows:
            have[image_id][label_id] = is_default
    # Labels list in the order they were added (created_at, see server/_label_store.py).
    now = utcnow()
    rows_out: list[dict[str, Any]] = []
    for image_id, label_list in wanted.items():
        has_default = any(have[image_id].values())
        for i, label_id in enumerate(label_list):
            if label_id in have[image_id]:
                continue
            rows_out.append({"image_id": image_id, "label_id": label_id,
                             "is_default": not has_default, "source": "manual",
                             "created_by": user_id, "created_at": now + timedelta(microseconds=i)})
            has_default = True
    if rows_out:
        await session.execute(insert(ImageLabel), rows_out)


# --- the sweep ------------------------------------------------------------------------------

async def sweep(sessions: async_sessionmaker[AsyncSession], store: Store,
                grace_seconds: float) -> int:
    """Remove the files of uploads that never committed (intents older than the grace);
    returns how many contents lost their files. Safe beside running uploads and other
    processes' sweeps (content locks)."""
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    removed = 0
    while True:
        async with transaction(sessions) as session:
            stale = (await session.execute(
                select(UploadIntent.id, UploadIntent.sha256)
                .where(UploadIntent.created_at <= cutoff).order_by(UploadIntent.id)
                .limit(500))).all()
            if not stale:
                break
            shas = sorted({sha for _, sha in stale})
            await lock_contents(session, shas)
            await session.execute(delete(UploadIntent).where(
                UploadIntent.id.in_([i for i, _ in stale])))
            await session.flush()
            in_use = await contents_in_use(session, shas)
            orphans = [sha for sha in shas if sha not in in_use]
            await store.delete_many([k for sha in orphans for k in content_keys(sha)])
            removed += len(orphans)
    if isinstance(store, LocalStore):
        await asyncio.to_thread(store.forget_partial, grace_seconds)
    return removed
