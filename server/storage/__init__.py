"""Where image bytes live: one interface (:class:`Store`), two backends picked by URL.

``LABELHUB_STORAGE_URL`` empty (the default) keeps everything in the data directory
(:class:`LocalStore`); ``s3://bucket/prefix`` puts originals, thumbnails and exports in an
S3-compatible bucket (:class:`S3Store`). Naming and decoding rules are pure
(``server/storage/rules.py``); the backends only move bytes. They load on first use, so
importing the rules pulls in no asyncio, settings or network client.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.storage.base import Blob, StorageUnavailable, Store
from server.storage.rules import (
    MAX_PIXELS,
    THUMB_MIME,
    THUMB_SIZE,
    ImageRejected,
    Prepared,
    Refused,
    content_keys,
    decode,
    original_key,
    prepare,
    prepare_many,
    sniff_mime,
    thumb_key,
    thumbnail,
)

__all__ = [
    "MAX_PIXELS", "THUMB_MIME", "THUMB_SIZE", "Blob", "ImageRejected", "LocalStore", "Prepared",
    "Refused", "StorageUnavailable", "Store", "content_keys", "decode", "open_store",
    "original_key", "prepare", "prepare_many", "sniff_mime", "store_for", "thumb_key",
    "thumbnail",
]


if TYPE_CHECKING:
    from server.settings import Settings
    from server.storage.local import LocalStore


def __getattr__(name: str) -> Any:
    if name == "LocalStore":
        from server.storage.local import LocalStore

        return LocalStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def store_for(url: str, data_dir: object, timeout: float = 10.0) -> Store:
    """The backend a storage URL names (empty or ``file://``: a local directory)."""
    from server.storage.local import LocalStore

    if not url:
        return LocalStore(Path(str(data_dir)))
    if url.startswith("file://"):
        return LocalStore(Path(url.removeprefix("file://")))
    if url.startswith(("s3://", "s3a://")):
        from server.storage.s3 import S3Store  # obstore loads only when a bucket is used

        return S3Store(url, timeout)
    raise ValueError(f"LABELHUB_STORAGE_URL: unknown scheme in {url!r} (use s3://bucket/prefix)")


@lru_cache(maxsize=8)
def _cached(url: str, data_dir: str, timeout: float) -> Store:
    return store_for(url, data_dir, timeout)


def open_store(settings: Settings) -> Store:
    """The process's store for these settings (one client, its connections reused)."""
    return _cached(settings.storage_url, str(settings.data_dir), settings.storage_timeout_seconds)
