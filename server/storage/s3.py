"""S3-compatible object storage (AWS S3, MinIO, SeaweedFS, Ceph...) through ``obstore``.

Why obstore: it is the Python face of the Rust ``object_store`` crate (Apache Arrow's, used by
DataFusion, Polars and delta-rs), one async API for S3/GCS/Azure/local with multipart uploads,
retries and connection pooling built in, and no boto stack to pull in (aioboto3 would add
botocore, aiobotocore and aiohttp, ~80 MB, for the same five calls).

Configuration is the usual AWS one: ``LABELHUB_STORAGE_URL=s3://bucket/prefix`` names the
bucket and prefix; ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and the rest of obstore's ``S3Config`` variables) come from the
environment. An ``http://`` endpoint (a store on the local network) is allowed.

Requests are bounded: a store that does not answer within ``LABELHUB_STORAGE_TIMEOUT_SECONDS``
(a few retries included) raises :class:`StorageUnavailable` instead of hanging a request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store as _Obstore

from server.storage.base import Blob, StorageUnavailable

__all__ = ["PUT_CONCURRENCY", "S3Store"]

#: Objects a ``put_many`` sends at once (small images: the round trips, not the bytes, cost).
PUT_CONCURRENCY = 32
_PART = 8 << 20  # multipart part size for streamed writes (S3 wants >= 5 MiB)
_READ_CHUNK = 1 << 20


class S3Store:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("s3", "s3a") or not parts.netloc:
            raise ValueError(f"LABELHUB_STORAGE_URL must look like s3://bucket/prefix, not {url!r}")
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL", os.environ.get("AWS_ENDPOINT", ""))
        client: dict[str, Any] = {"timeout": f"{max(1, int(timeout))}s",
                                  "connect_timeout": f"{max(1, int(timeout / 3))}s"}
        if endpoint.startswith("http://"):
            client["allow_http"] = True
        retry: Any = {"max_retries": 3, "retry_timeout": timedelta(seconds=timeout),
                      "backoff": {"init_backoff": timedelta(milliseconds=100),
                                  "max_backoff": timedelta(seconds=2), "base": 2}}
        extra: dict[str, Any] = {}
        if endpoint and not os.environ.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST"):
            # Self-hosted stores (MinIO, SeaweedFS, Ceph) answer path-style requests.
            extra["virtual_hosted_style_request"] = False
        self._store = _Obstore(self.bucket, prefix=self.prefix or None, client_options=client,  # type: ignore[arg-type]
                               retry_config=retry, **extra)

    def local_path(self, key: str) -> Path | None:
        return None

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        # An S3 PUT is durable when it answers 200; nothing to sync afterwards.
        gate = asyncio.Semaphore(PUT_CONCURRENCY)

        async def put(key: str, data: bytes) -> None:
            async with gate:
                await obstore.put_async(self._store, key, data, use_multipart=False)

        async with _translate():
            async with asyncio.TaskGroup() as group:
                for key, data in items:
                    group.create_task(put(key, data))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        async with _translate():
            await obstore.put_async(self._store, key, counted(), chunk_size=_PART,
                                    max_concurrency=4)
        return size

    async def get(self, key: str) -> bytes:
        async with _translate():
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())

    async def open(self, key: str) -> Blob:
        async with _translate():
            result = await obstore.get_async(self._store, key)
        size = int(result.meta["size"])

        async def chunks() -> AsyncIterator[bytes]:
            async with _translate():
                async for chunk in result.stream(min_chunk_size=_READ_CHUNK):
                    yield bytes(chunk)

        return Blob(size, chunks())

    async def size(self, key: str) -> int | None:
        try:
            async with _translate():
                meta = await obstore.head_async(self._store, key)
        except FileNotFoundError:
            return None
        return int(meta["size"])

    async def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            async with _translate():
                await obstore.delete_async(self._store, list(keys))

    async def list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        async with _translate():
            stream = obstore.list(self._store, prefix=prefix or None, chunk_size=1000)
            async for batch in stream:
                for meta in batch:
                    yield meta["path"], int(meta["size"])

    async def close(self) -> None:
        return None


class _translate:
    """Map obstore's errors: a missing object stays FileNotFoundError, the rest is the store
    being unavailable (connection refused, timeouts, 5xx after retries, bad credentials)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> None:
        if exc is None or isinstance(exc, FileNotFoundError):
            return
        if isinstance(exc, BaseError | OSError) or (
                isinstance(exc, BaseExceptionGroup) and exc.subgroup(
                    lambda e: isinstance(e, BaseError | OSError | StorageUnavailable)) is not None):
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise StorageUnavailable(f"the image store is unavailable ({first})") from exc
