"""Exports that include the image files (``?images=1``).

The ZIP formats put each image where their layout expects it (YOLO ``images/train/<stem>.<ext>``,
VOC ``JPEGImages/<stem>.<ext>``, masks ``images/<stem>.<ext>``), the single-file formats become
a ZIP of ``annotations.<suffix>``, ``images/<path>`` and ``names.csv``. The files are read in a
second pass over the same snapshot, so their stems are exactly the annotations' ones. A file
missing from the store is listed in ``missing.txt`` rather than failing the export half-way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import ModuleType

from server.formats._source import ExportJob, ImageRecord, iter_images
from server.formats._zip import Spool, ZipStream, names_rows, suffix, unique_stems
from server.storage import Store, original_key

__all__ = ["add_images", "layout_export", "with_images"]


async def _read(store: Store, sha: str) -> bytes | None:
    """The original's bytes from the store (local or S3), ``None`` when it is missing."""
    try:
        return await store.get(original_key(sha))
    except FileNotFoundError:
        return None


async def add_images(z: ZipStream, job: ExportJob, path_for: Callable[[str, str], str],
                     names: Spool | None = None) -> AsyncIterator[bytes]:
    """Each image's file into ``z`` at ``path_for(stem, name)`` (nothing without ``images``)."""
    if job.images is None:
        return
    seen: dict[str, int] = {}
    missing: list[str] = []
    async for batch in iter_images(job.sessions, job.project_id, job.flt, labels=False, objects=False):
        stems = unique_stems([im.name for im in batch], seen)
        if names is not None:
            names.write(names_rows(stems, [im.name for im in batch]))
        for im, st in zip(batch, stems, strict=True):
            data = await _read(job.images, im.sha256)
            if data is None:
                missing.append(im.name)
            else:  # stored (no compression) in a thread: a big file must not stall the event loop
                await asyncio.to_thread(z.add_stored, path_for(st, im.name), data)
        yield z.drain()
    if missing:
        z.add("missing.txt", "".join(f"{n}\n" for n in missing))


async def with_images(module: ModuleType, job: ExportJob) -> AsyncIterator[bytes]:
    """A single-file format's export and the image files, as one ZIP."""
    z = ZipStream()
    async for chunk in z.add_async(f"annotations.{module.SUFFIX}", module.export(job)):
        yield chunk
    names = Spool()
    names.write("stem,image\n")
    try:
        async for chunk in add_images(z, job, lambda st, name: f"images/{st}.{suffix(name)}", names):
            yield chunk
        for chunk in z.add_chunks("names.csv", names.chunks()):
            yield chunk
    finally:
        names.close()
    yield z.close()


async def layout_export(z: ZipStream, job: ExportJob,
                        write_batch: Callable[[list[ImageRecord], list[str]], str],
                        listing_name: str, image_path: Callable[[str, str], str],
                        ) -> AsyncIterator[bytes]:
    """A folder-layout format's members (YOLO, VOC): per batch of images, ``write_batch(batch,
    stems)`` adds their annotation files to ``z`` (in a thread: it formats every object) and
    returns their lines of the listing (``train.txt``, ``default.txt``); then the listing as
    ``listing_name``, ``names.csv`` (stem to image name) and, with ``?images=1``, the image files
    at ``image_path(stem, name)``. The caller adds what comes last and closes ``z``."""
    seen: dict[str, int] = {}
    listing, names = Spool(), Spool()
    names.write("stem,image\n")
    try:
        async for batch in iter_images(job.sessions, job.project_id, job.flt, labels=False):
            stems = unique_stems([im.name for im in batch], seen)
            listing.write(await asyncio.to_thread(write_batch, batch, stems))
            names.write(names_rows(stems, [im.name for im in batch]))
            yield z.drain()
        for chunk in z.add_chunks(listing_name, listing.chunks()):
            yield chunk
        for chunk in z.add_chunks("names.csv", names.chunks()):
            yield chunk
    finally:
        listing.close()
        names.close()
    async for chunk in add_images(z, job, image_path):
        yield chunk
