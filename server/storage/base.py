"""The one interface every storage backend offers, and its errors.

A backend moves bytes by key (``server/storage/rules.py`` names the keys); it knows nothing of
images, rows or requests. All methods are async: the local backend runs its file calls in a
thread, the S3 backend awaits the network. :class:`StorageUnavailable` means "the store did not
answer" (REST 503 ``storage_unavailable``); a missing key is :class:`FileNotFoundError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Blob", "StorageUnavailable", "Store"]


class StorageUnavailable(Exception):
    """The object store could not be reached or refused to work; nothing was acknowledged."""

    code = "storage_unavailable"

    def __init__(self, message: str = "the image store is unavailable; try again shortly") -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Blob:
    """An object opened for reading: its size and its bytes, a chunk at a time."""

    size: int
    chunks: AsyncIterator[bytes]


class Store(Protocol):
    #: Where the store lives, for messages (``file:///data`` or ``s3://bucket/prefix``).
    url: str

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write every ``(key, bytes)``; when this returns, all of them are durable."""

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Write a large object from chunks (multipart on S3) without holding it whole;
        the size written."""

    async def get(self, key: str) -> bytes:
        """The object's bytes (:class:`FileNotFoundError` when it is missing)."""

    async def open(self, key: str) -> Blob:
        """The object as a stream (:class:`FileNotFoundError` when it is missing)."""

    async def size(self, key: str) -> int | None:
        """The object's size, ``None`` when it is missing."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove the keys; a missing key is not an error."""

    def list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        """Every ``(key, size)`` under ``prefix``."""

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` when the store is a local directory (served by sendfile)."""

    async def close(self) -> None:
        """Release connections and threads."""
